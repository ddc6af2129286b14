"""tripwire benchmarks. Each ``bench_<name>.py`` module has ``run() -> list[Result]``; every figure is
reported as a ratio against a raw baseline measured in the same process, because this machine is noisy."""
