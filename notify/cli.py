"""``tripwire notify``: route alerts and kill-switch trips/resets to webhooks, Slack and PagerDuty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command("notify")
    def notify(
        routes: Path = typer.Option(..., "--routes", help="routes YAML (see routes.example.yaml)"),
        bootstrap: str | None = typer.Option(None, help="Kafka bootstrap servers (default: env / 127.0.0.1:9092)"),
        topic_prefix: str | None = typer.Option(None, help="prefix of every topic name"),
        group: str | None = typer.Option(None, help="consumer group (default tripwire-notify, prefixed)"),
        max_attempts: int | None = typer.Option(None, help="tries per delivery before dead-lettering"),
        check: bool = typer.Option(False, "--check", help="validate the routes file and its secrets, then exit"),
        metrics_port: int | None = typer.Option(None, help="serve Prometheus metrics on this port"),
    ) -> None:
        """Consume alerts and kill-switch commands; deliver them to the routes; commit after delivery."""
        import signal

        from tripwire.core.errors import ConfigError
        from tripwire.notify import Notifier, NotifyConfig, load_routes

        given: dict[str, Any] = {
            "bootstrap": bootstrap,
            "topic_prefix": topic_prefix,
            "group_id": group,
            "max_attempts": max_attempts,
            "metrics_port": metrics_port,
        }
        try:
            config = NotifyConfig(routes_path=routes, **{k: v for k, v in given.items() if v is not None})
            loaded = load_routes(routes, config)
        except (ConfigError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        if check:
            for r in loaded:
                typer.echo(f"route {r.name}: channel={r.channel} match={r.match.model_dump(exclude_none=True)}")
            return
        notifier = Notifier(loaded, config)

        def _stop(signum: int, _frame: object) -> None:
            notifier.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        typer.echo(f"notifying routes={len(loaded)} group={config.consumer_group}", err=True)
        try:
            notifier.run()
        except ConfigError as e:  # e.g. KafkaAuthError: the broker refused the credentials
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from e
        typer.echo(f"stopped {notifier.stats}", err=True)
