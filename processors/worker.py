"""Build and run a processor worker: topics, app, tables, agents, metrics."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from tripwire.core import tune_gc
from tripwire.processors.config import ProcessorConfig

log = logging.getLogger(__name__)


def build(config: ProcessorConfig) -> Any:
    """Create the topics and a ready-to-run faust app (returns the :class:`Runtime`)."""
    from tripwire.processors.agents import Runtime, register_agents
    from tripwire.processors.app import create_app
    from tripwire.processors.pipeline import Pipeline
    from tripwire.processors.policy import load_policy
    from tripwire.processors.tables import create_tables
    from tripwire.processors.topics import ensure_runtime_topics

    topics = ensure_runtime_topics(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(config)
    prepare_local_state(Path(app.conf.tabledir), config.reset_local_state)
    tables = create_tables(app, config)
    runtime = Runtime(app, config, topics, tables, Pipeline(load_policy(config.policy_path)))
    register_agents(runtime)
    from tripwire.processors._faust_fixes import install_flusher

    install_flusher(app, runtime)  # pending records are sent right before each offset commit
    from tripwire.processors.killswitch_agent import register_killswitch_agent

    register_killswitch_agent(runtime)  # alerts -> signed kill-switch commands (off without a signing key)
    return runtime


STORE_MARKER = ".tripwire-store-v2"
"""A file in the table directory of a store written the trustworthy way (states only after their
transaction committed, with the changelog offset in the same write batch: ``tables.store_write``).
A directory without it was written by an older release, which wrote states before the commit."""


def prepare_local_state(tabledir: Path, reset: bool) -> str:
    """Keep the local RocksDB stores if they can be trusted, else delete them so that the tables are
    rebuilt from their changelogs. Returns what was done: ``kept``, ``new``, or ``rebuild: why``.

    Trusted: the marker is there and every partition database opens and holds a readable
    persisted offset (or none). faust's recovery then replays each changelog from that offset."""
    why = "reset_local_state" if reset else _untrusted(tabledir)
    if why is None:
        log.info("keeping the local state dir=%s", tabledir)
        return "kept"
    if tabledir.exists():
        log.warning("rebuilding the local state from the changelogs dir=%s reason=%s", tabledir, why)
        shutil.rmtree(tabledir, ignore_errors=True)
    tabledir.mkdir(parents=True, exist_ok=True)
    (tabledir / STORE_MARKER).write_text("states written after their commit, with the changelog offset\n")
    return "new" if why == "absent" else f"rebuild: {why}"


def _untrusted(tabledir: Path) -> str | None:
    if not tabledir.exists() or not any(tabledir.iterdir()):
        return "absent"
    if not (tabledir / STORE_MARKER).exists():
        return "written by an older release (no marker)"
    import rocksdict

    from tripwire.processors.tables import OFFSET_KEY

    for path in sorted(p for p in tabledir.iterdir() if p.suffix == ".db"):
        try:
            opts = rocksdict.Options(raw_mode=True)
            db = rocksdict.Rdict(str(path), options=opts, access_type=rocksdict.AccessType.read_only())
            try:
                raw = db.get(OFFSET_KEY)
                if raw is not None:
                    int(raw)
            finally:
                db.close()
        except Exception as e:  # corrupt, truncated, not a database, unreadable offset
            return f"{path.name}: {type(e).__name__}: {e}"
    return None


def run_worker(config: ProcessorConfig) -> None:
    """Run one worker in this process until it is stopped (SIGTERM/SIGINT)."""
    from faust.worker import Worker

    runtime = build(config)
    tune_gc()
    if config.metrics_port is not None:
        port = runtime.metrics.serve(config.metrics_port)
        log.warning("prometheus metrics on port=%d", port)

    class _Worker(Worker):  # type: ignore[misc]
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            # faust's terminal spinner lowers the root logger to DEBUG and adds a DEBUG handler, so
            # every debug call of aiokafka builds a log record: ~5 % of a busy worker's CPU.
            self.spinner = None
            logger.setLevel(level)

    _Worker(runtime.app, loglevel=config.log_level, quiet=True).execute_from_commandline()


if __name__ == "__main__":  # python -m tripwire.processors.worker (env-configured)
    run_worker(ProcessorConfig())
