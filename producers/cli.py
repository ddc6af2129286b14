"""``tripwire sdk ...``: check an agent config, inspect and replay an SDK spool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

sdk_app = typer.Typer(help="The agent SDK: config check, spool inspection and replay.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(sdk_app, name="sdk")
    app.command("otlp")(otlp)


def otlp(
    config: Path | None = typer.Option(
        None, "--config", help="agent YAML with the producer side (default: TRIPWIRE_OTLP_TRACER_CONFIG, TRIPWIRE_*)"
    ),
    http_port: int | None = typer.Option(None, help="OTLP/HTTP port (default: TRIPWIRE_OTLP_HTTP_PORT or 4318)"),
    grpc_port: int | None = typer.Option(None, help="OTLP/gRPC port (default: TRIPWIRE_OTLP_GRPC_PORT or 4317)"),
) -> None:
    """Receive OTLP traces (HTTP 4318, gRPC 4317) and publish them as tripwire events (pip extra: otlp)."""
    import signal
    import threading

    from tripwire.core.errors import ConfigError, MissingExtraError

    try:
        from tripwire.producers.otlp import OtlpReceiver, OtlpSettings, serve
    except MissingExtraError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from e
    given = (("tracer_config", config), ("http_port", http_port), ("grpc_port", grpc_port))
    overrides: dict[str, Any] = {k: v for k, v in given if v is not None}
    try:
        settings = OtlpSettings(**overrides)
        receiver = OtlpReceiver(settings)
        servers = serve(receiver)
    except (ConfigError, ValueError, OSError) as e:
        typer.echo(f"tripwire otlp: {e}", err=True)
        raise typer.Exit(2) from e
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ports = {"http": servers.http.port if servers.http else None, "grpc": getattr(servers.grpc, "port", None)}
    typer.echo(json.dumps({"listening": ports, "topic": receiver.tracer_config.kafka.topic}), err=True)
    stop.wait()
    servers.stop()
    clean = receiver.close()
    typer.echo(json.dumps({"closed": True, "clean": clean, **receiver.counters.as_dict()}), err=True)


@sdk_app.command("check-config")
def check_config(path: Path = typer.Argument(..., help="agent YAML file")) -> None:
    """Validate an agent YAML file and print the effective SDK config (secrets masked)."""
    from tripwire.core.errors import ConfigError
    from tripwire.producers.config import load_config

    try:
        cfg = load_config(path)
    except ConfigError as e:
        typer.echo(f"invalid: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True))


@sdk_app.command("spool-status")
def spool_status(directory: Path = typer.Argument(..., help="spool directory")) -> None:
    """Segments, records and bytes waiting in a spool (read-only; safe while a tracer runs)."""
    from tripwire.producers.spool import segment_files, segment_records
    from tripwire.schemas import DecodeError, decode

    segments = segment_files(directory)
    records = corrupt = undecodable = 0
    runs: set[str] = set()
    size = 0
    for seg in segments:
        size += seg.stat().st_size
        recs, bad = segment_records(seg)
        records += len(recs)
        corrupt += bad
        for _, value in recs:
            try:
                runs.add(decode(value, validate=False).run_id)  # type: ignore[attr-defined]
            except DecodeError:
                undecodable += 1
    typer.echo(
        json.dumps(
            {
                "directory": str(directory),
                "segments": len(segments),
                "records": records,
                "bytes": size,
                "runs": len(runs),
                "corrupt_records": corrupt,
                "undecodable_records": undecodable,
            },
            indent=2,
        )
    )


@sdk_app.command("spool-replay")
def spool_replay(
    directory: Path = typer.Argument(..., help="spool directory (must not be in use by a running tracer)"),
    bootstrap: str | None = typer.Option(None, help="Kafka bootstrap servers (default: TRIPWIRE_KAFKA_BOOTSTRAP)"),
    topic: str | None = typer.Option(None, help="events topic (default: TRIPWIRE_KAFKA_TOPIC or the contract's)"),
    timeout: float = typer.Option(60.0, help="seconds to wait for the broker to acknowledge everything"),
) -> None:
    """Deliver a spool to Kafka in order (what the next tracer start would do), then exit."""
    from tripwire.producers.config import DeliverySettings, KafkaProducerSettings
    from tripwire.producers.delivery import Delivery
    from tripwire.producers.errors import SpoolError
    from tripwire.producers.spool import Spool
    from tripwire.producers.transport import KafkaTransport

    overrides: dict[str, Any] = {k: v for k, v in (("bootstrap", bootstrap), ("topic", topic)) if v is not None}
    kafka = KafkaProducerSettings(**overrides)
    settings = DeliverySettings(spool_dir=directory)
    try:
        spool = Spool(directory, max_bytes=settings.spool_max_bytes, segment_bytes=settings.segment_bytes)
    except SpoolError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from e
    delivery = Delivery(KafkaTransport(kafka), settings, spool)
    done = delivery.flush(timeout)
    delivery.close(min(10.0, timeout))
    c = delivery.counters()
    typer.echo(
        json.dumps({"complete": done, "replayed": c.replayed, "dropped": c.dropped, "left_bytes": c.spool_bytes})
    )
    if not done:
        raise typer.Exit(1)
