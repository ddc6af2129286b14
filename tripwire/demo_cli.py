"""``tripwire demo`` and ``tripwire demo report``."""

from __future__ import annotations

from pathlib import Path

import typer

_DIR_HELP = "folder for the demo's data (chdb, keys, spool, ground truth); re-running continues it"


def register(app: typer.Typer) -> None:
    demo_app = typer.Typer(help="The whole product on this machine, no servers: fleet, pipeline, chdb, dashboard.",
                           invoke_without_command=True)

    @demo_app.callback()
    def demo(
        ctx: typer.Context,
        duration: float | None = typer.Option(None, help="seconds to run (default: until Ctrl-C)"),
        dashboard: bool = typer.Option(True, "--dashboard/--no-dashboard", help="serve the dashboard"),
        rate: float = typer.Option(400.0, help="target events per second"),
        agents: int = typer.Option(10, help="concurrent simulated agents"),
        seed: int = typer.Option(7, help="random seed of the fleet"),
        port: int = typer.Option(8501, help="dashboard port"),
        folder: Path = typer.Option(Path(".tripwire"), "--dir", help=_DIR_HELP),
        otlp_port: int = typer.Option(4318, help="also accept OTLP/HTTP traces on this port (-1: off; needs [otlp])"),
    ) -> None:
        """Run a simulated agent fleet through the real SDK, the stream operators, the kill-switch policy
        and the sink into chdb, with the dashboard on http://localhost:8501."""
        if ctx.invoked_subcommand is not None:
            return
        from rich.console import Console

        from tripwire.demo import DemoConfig, run_demo

        console = Console()
        if dashboard:
            console.print(f"dashboard: http://localhost:{port}  (Ctrl-C stops and flushes)")
        summary = run_demo(DemoConfig(folder=folder, duration_s=duration, rate=rate, agents=agents, seed=seed,
                                      dashboard=dashboard, port=port, otlp_port=None if otlp_port < 0 else otlp_port))
        console.print(f"stopped: {summary['emitted']} events emitted, {summary['processed']} processed, "
                      f"{summary['dropped']} dropped, {summary['events_per_s']:.0f} events/s, "
                      f"cost ${summary['cost_usd']:.2f}, {summary['killswitch_commands']} kill-switch commands. "
                      f"`tripwire demo report --dir {folder}` compares incidents with alerts.")
        if not summary["drained"] or summary["tracers_not_flushed"]:
            raise typer.Exit(1)

    @demo_app.command("report")
    def report(folder: Path = typer.Option(Path(".tripwire"), "--dir", help=_DIR_HELP)) -> None:
        """Injected incidents against the alerts raised, total cost, p95 by version, kill switches."""
        from rich.console import Console

        from tripwire.demo_report import render
        from tripwire.sinks.store import open_store

        chdb_dir = folder / "chdb"
        if not chdb_dir.exists():
            typer.echo(f"no demo data in {folder}; run `tripwire demo --duration 60 --no-dashboard` first", err=True)
            raise typer.Exit(2)
        store = open_store(f"chdb://{chdb_dir.resolve()}", create=False)
        renderable, ok = render(store, folder)
        Console().print(renderable)
        raise typer.Exit(0 if ok else 1)

    app.add_typer(demo_app, name="demo")

    @app.command("simulate")
    def simulate_cmd(
        bootstrap: str = typer.Option("127.0.0.1:9092", envvar="TRIPWIRE_KAFKA_BOOTSTRAP", help="Kafka bootstrap"),
        rate: float = typer.Option(1000.0, help="target events per second"),
        duration: float = typer.Option(60.0, help="seconds to run"),
        agents: int = typer.Option(10, help="concurrent simulated agents"),
        seed: int = typer.Option(7, help="random seed of the fleet"),
        topic_prefix: str = typer.Option("", help="prefix of the tripwire topic names"),
        public_key: Path | None = typer.Option(None, envvar="TRIPWIRE_KILLSWITCH_PUBLIC_KEY_PATH",
                                               help="kill-switch public key: agents then obey the switches"),
        incidents: bool = typer.Option(True, "--incidents/--no-incidents", help="inject the scheduled incidents"),
        folder: Path = typer.Option(Path(".tripwire/simulate"), "--dir", help="spool and ground-truth folder"),
    ) -> None:
        """Drive a real Kafka with the simulated fleet (the load generator of the distributed mode)."""
        import json

        from tripwire.simulate import SimulateConfig, simulate

        summary = simulate(SimulateConfig(bootstrap=bootstrap, topic_prefix=topic_prefix, rate=rate,
                                          duration_s=duration, agents=agents, seed=seed, folder=folder,
                                          public_key=public_key, incidents=incidents))
        typer.echo(json.dumps(summary, sort_keys=True))
        if not summary["flushed"] or summary["dropped"]:
            raise typer.Exit(1)
