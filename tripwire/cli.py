"""The ``tripwire`` console command. Each subcommand lives with the package it drives;
this module only wires them into one typer app."""

from __future__ import annotations

import logging

import typer

from tripwire import __version__

app = typer.Typer(
    name="tripwire",
    help="Agent-ops telemetry and control plane: Avro events on Kafka, stream processors, "
    "kill switches, ClickHouse.",
    no_args_is_help=True,
    add_completion=False,
)

devenv_app = typer.Typer(help="Development services run on this machine (no Docker needed).", no_args_is_help=True)
app.add_typer(devenv_app, name="devenv")


@devenv_app.command("kafka")
def devenv_kafka(
    action: str = typer.Argument(..., help="start | stop | status | fetch"),
    port: int | None = typer.Option(None, help="broker port (default 9092)"),
    controller_port: int | None = typer.Option(None, help="controller port (default 9093)"),
) -> None:
    """Run the real Apache Kafka broker (KRaft mode) on 127.0.0.1."""
    from tripwire.devenv.kafka import main as kafka_main

    argv = ["kafka", action]
    if port is not None:
        argv += ["--port", str(port)]
    if controller_port is not None:
        argv += ["--controller-port", str(controller_port)]
    raise typer.Exit(kafka_main(argv))


@app.command()
def version() -> None:
    """Print the tripwire version."""
    typer.echo(__version__)


@app.callback()
def _root(log_level: str = typer.Option("WARNING", "--log-level", help="logging level")) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")


# Each package adds its own subcommands in ``<package>/cli.py`` through
# ``register(app)``; command bodies import their heavy dependencies lazily so that
# ``tripwire --help`` stays fast and works with the base install.
_COMMAND_MODULES = (
    "tripwire.schemas.cli",
    "tripwire.killswitch.cli",
    "tripwire.producers.cli",
    "tripwire.processors.cli",
    "tripwire.notify.cli",
    "tripwire.sinks.cli",
    "tripwire.dashboard.cli",
    "tripwire.demo_cli",
    "tripwire.topics_cli",
)


def _register_all() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that package has no commands yet
                continue
            raise
        module.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
