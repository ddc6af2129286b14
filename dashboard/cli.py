"""``tripwire dashboard``: serve the Streamlit dashboard."""

from __future__ import annotations

from pathlib import Path

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
        auth: str | None = typer.Option(
            None, "--auth",
            help="oidc (Streamlit sign-in, roles from --roles) or dev (no sign-in, 127.0.0.1 only, warning banner); "
            "default: oidc when [auth] secrets exist, else dev",
        ),
        secrets: Path | None = typer.Option(
            None, "--secrets", help="secrets TOML with the [auth] section (default: .streamlit/secrets.toml lookup)",
        ),
        roles: Path | None = typer.Option(
            None, "--roles", help="roles YAML mapping emails / groups to viewer, oncall, analyst, admin "
            "(default: TRIPWIRE_DASHBOARD_ROLES_PATH)",
        ),
    ) -> None:
        """Serve the dashboard (Overview, Runs, Alerts, Kill switch, Cost, SQL)."""
        from tripwire.core.errors import TripwireError
        from tripwire.dashboard.config import DashboardSettings
        from tripwire.dashboard.server import serve

        if auth not in (None, "oidc", "dev"):
            typer.echo(f"error: --auth must be oidc or dev, not {auth!r}", err=True)
            raise typer.Exit(2)
        try:
            url = store or (lambda s: s.get_secret_value() if s else None)(DashboardSettings().store_url)
            if url is None:
                typer.echo("error: no store: pass --store chdb:///path or clickhouse://... "
                           "(or set TRIPWIRE_DASHBOARD_STORE_URL)", err=True)
                raise typer.Exit(2)
            typer.echo(f"tripwire dashboard on http://{address}:{port}")
            serve(store_url=url, port=port, address=address, auth=auth, secrets=secrets, roles=roles)
        except TripwireError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
