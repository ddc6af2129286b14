"""Build and run a processor worker: topics, app, tables, agents, metrics."""

from __future__ import annotations

import logging
import shutil
from typing import Any

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
    if config.reset_local_state:
        # The changelog is the source of truth: a killed worker's RocksDB may hold writes whose
        # transaction was aborted, so tables are rebuilt from the (committed) changelog.
        shutil.rmtree(app.conf.tabledir, ignore_errors=True)
    tables = create_tables(app, config)
    runtime = Runtime(app, config, topics, tables, Pipeline(load_policy(config.policy_path)))
    register_agents(runtime)
    from tripwire.processors._faust_fixes import install_flusher

    install_flusher(app, runtime)  # pending records are sent right before each offset commit
    from tripwire.processors.killswitch_agent import register_killswitch_agent

    register_killswitch_agent(runtime)  # alerts -> signed kill-switch commands (off without a signing key)
    return runtime


def run_worker(config: ProcessorConfig) -> None:
    """Run one worker in this process until it is stopped (SIGTERM/SIGINT)."""
    from faust.worker import Worker

    runtime = build(config)
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
