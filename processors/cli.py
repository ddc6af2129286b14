"""``tripwire process``: run the stream processors (a faust worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command("process")
    def process(
        bootstrap: str | None = typer.Option(None, help="Kafka bootstrap servers (default: env / 127.0.0.1:9092)"),
        topic_prefix: str | None = typer.Option(None, help="prefix of every topic name"),
        app_id: str | None = typer.Option(None, help="faust app id = consumer group (default from the prefix)"),
        partitions: int | None = typer.Option(None, help="partitions of the topics the worker creates"),
        concurrency: int = typer.Option(1, min=1, max=64, help="worker processes to run (same consumer group)"),
        guarantee: str | None = typer.Option(None, help="exactly_once | at_least_once"),
        policy: Path | None = typer.Option(None, help="detector policy YAML (overrides the defaults)"),
        data_dir: Path | None = typer.Option(None, help="where RocksDB tables live"),
        metrics_port: int | None = typer.Option(None, help="serve Prometheus metrics on this port"),
        log_level: str = typer.Option("warn", help="crit | error | warn | info | debug"),
    ) -> None:
        """Consume the events topic; publish run summaries, window stats and alerts."""
        import os
        import signal
        import subprocess
        import sys

        from tripwire.core.kafka_security import KafkaSecurity
        from tripwire.processors.config import ProcessorConfig
        from tripwire.processors.worker import run_worker

        given: dict[str, Any] = {
            "bootstrap": bootstrap,
            "topic_prefix": topic_prefix,
            "app_id": app_id,
            "partitions": partitions,
            "processing_guarantee": guarantee,
            "policy_path": policy,
            "data_dir": data_dir,
            "metrics_port": metrics_port,
            "log_level": log_level,
        }
        config = ProcessorConfig(**{k: v for k, v in given.items() if v is not None})
        if concurrency == 1:
            run_worker(config)
            return
        # N processes in one consumer group: each its own data dir and metrics port.
        children = []
        for i in range(concurrency):
            env = dict(os.environ)
            # TLS/SASL settings reach the children through the inherited TRIPWIRE_KAFKA_* environment
            for k, v in config.model_dump(exclude_none=True, exclude=set(KafkaSecurity.model_fields)).items():
                env[f"TRIPWIRE_PROCESSORS_{k.upper()}"] = str(v)
            env["TRIPWIRE_PROCESSORS_DATA_DIR"] = str(config.data_dir / f"worker-{i}")
            if config.metrics_port:
                env["TRIPWIRE_PROCESSORS_METRICS_PORT"] = str(config.metrics_port + i)
            children.append(subprocess.Popen([sys.executable, "-m", "tripwire.processors.worker"], env=env))

        def forward(signum: int, _frame: object) -> None:  # stop the workers with the signal we got
            for c in children:
                if c.poll() is None:
                    c.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        try:
            codes = [c.wait() for c in children]
        finally:
            for c in children:
                if c.poll() is None:
                    c.terminate()
        raise typer.Exit(max(codes))
