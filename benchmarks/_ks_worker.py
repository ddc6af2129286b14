"""The processors worker (which wires in the kill-switch policy agent), for kill-switch tests and benchmarks:
unlike ``python -m tripwire.processors.worker`` it refuses to start without a signing key.

    python -m benchmarks._ks_worker     (configured by TRIPWIRE_PROCESSORS_* and TRIPWIRE_KILLSWITCH_* env)
"""

from __future__ import annotations


def main() -> None:
    from faust.worker import Worker

    from tripwire.processors.config import ProcessorConfig
    from tripwire.processors.killswitch_agent import register_killswitch_agent
    from tripwire.processors.worker import build

    config = ProcessorConfig()
    runtime = build(config)
    if not register_killswitch_agent(runtime):
        raise SystemExit("the kill-switch policy needs TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH")
    Worker(runtime.app, loglevel=config.log_level, quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
