"""``tripwire schemas ...`` commands: evolution check and the shipped schema list."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    schemas_app = typer.Typer(help="The Avro event contract: schema versions and compatibility.", no_args_is_help=True)
    app.add_typer(schemas_app, name="schemas")

    @schemas_app.command("check")
    def check(
        root: list[Path] = typer.Option(
            [], "--root", help="extra schema root(s) holding v<N>/<name>.avsc, checked with the shipped ones"
        ),
        models: bool = typer.Option(True, help="also check the pydantic models against the current schemas"),
    ) -> None:
        """Prove every schema version backward and forward compatible with all earlier ones
        (Avro resolution rules), and every model equal to its schema. Exit 1 on any problem."""
        from tripwire.schemas.catalog import SHIPPED_ROOT, SchemaCatalog
        from tripwire.schemas.codec import DEFAULT_MODELS
        from tripwire.schemas.compat import check_catalog
        from tripwire.schemas.conformance import check_models
        from tripwire.schemas.errors import SchemaError

        try:
            catalog = SchemaCatalog([SHIPPED_ROOT, *root])
        except SchemaError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        failed = 0
        for name in catalog.names():
            versions = ", ".join(f"v{v.version}={v.fingerprint.hex()}" for v in catalog.versions(name))
            typer.echo(f"{name}: {versions}")
        for r in check_catalog(catalog):
            status = "ok" if r.ok else "INCOMPATIBLE"
            typer.echo(f"{r.name} v{r.old} -> v{r.new}: {status}")
            for p in r.backward:
                typer.echo(f"  backward (v{r.new} reader, v{r.old} data): {p}")
            for p in r.forward:
                typer.echo(f"  forward (v{r.old} reader, v{r.new} data): {p}")
            failed += not r.ok
        from tripwire.schemas.catalog import check_lock

        lock_problems = check_lock()
        for p in lock_problems:
            typer.echo(f"lock: {p}")
        typer.echo(f"shipped files: {'unchanged' if not lock_problems else f'{len(lock_problems)} problem(s)'}")
        failed += len(lock_problems)
        if models and not root:
            problems = check_models(catalog, DEFAULT_MODELS)
            for p in problems:
                typer.echo(f"model: {p}")
            typer.echo(f"models: {'ok' if not problems else f'{len(problems)} problem(s)'}")
            failed += len(problems)
        typer.echo("compatible" if not failed else f"FAILED: {failed} problem(s)")
        raise typer.Exit(1 if failed else 0)

    @schemas_app.command("lock")
    def lock() -> None:
        """Record the fingerprints of newly shipped versions in avro/fingerprints.json (never changes
        a recorded one: shipped files are kept forever)."""
        from tripwire.schemas.catalog import update_lock
        from tripwire.schemas.errors import SchemaError

        try:
            added = update_lock()
        except SchemaError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from e
        for a in added:
            typer.echo(f"locked {a}")
        typer.echo(f"{len(added)} version(s) added")

    @schemas_app.command("list")
    def list_() -> None:
        """List shipped schema versions with their CRC-64-AVRO fingerprints (single-object header)."""
        from tripwire.schemas.catalog import default_catalog

        for sv in default_catalog().all():
            typer.echo(f"{sv.name} v{sv.version} {sv.fingerprint.hex()} {sv.path.name}")
