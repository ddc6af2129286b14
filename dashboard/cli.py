"""``tripwire dashboard``: serve the Streamlit dashboard."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard(
        store: str | None = typer.Option(
            None, "--store",
            help="store URL: chdb:///path/to/dir[?database=db] or clickhouse://user:pass@host:8123/db "
            "(default: TRIPWIRE_DASHBOARD_STORE_URL, then TRIPWIRE_CLICKHOUSE_URL)",
        ),
        port: int = typer.Option(8501, "--port", min=1, max=65535, help="HTTP port"),
        address: str = typer.Option("127.0.0.1", "--address", help="address to bind (127.0.0.1 = this machine only)"),
    ) -> None:
        """Serve the dashboard (Overview, Runs, Alerts, Kill switch, Cost, SQL)."""
        from tripwire.dashboard.config import DashboardSettings
        from tripwire.dashboard.server import serve
        from tripwire.errors import TripwireError

        try:
            url = store or (lambda s: s.get_secret_value() if s else None)(DashboardSettings().store_url)
            if url is None:
                typer.echo("error: no store: pass --store chdb:///path or clickhouse://... "
                           "(or set TRIPWIRE_DASHBOARD_STORE_URL)", err=True)
                raise typer.Exit(2)
            if address not in ("127.0.0.1", "localhost", "::1"):
                typer.echo(f"warning: serving on {address} without sign-in: anyone who can reach it can trip "
                           "kill switches", err=True)
            typer.echo(f"tripwire dashboard on http://{address}:{port}")
            serve(store_url=url, port=port, address=address)
        except TripwireError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
