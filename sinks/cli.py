"""``tripwire sink | sql | data delete | data scan | gate | migrate``: the ClickHouse storage commands."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

import typer

_URL_HELP = (
    "store URL (chdb:///dir?database=db or clickhouse://user:pass@host:8123/db); default TRIPWIRE_CLICKHOUSE_URL"
)


def _settings():  # type: ignore[no-untyped-def]
    from tripwire.sinks.config import ClickHouseSettings

    return ClickHouseSettings()


def _url(url: str | None) -> str:
    return url or _settings().url.get_secret_value()


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def format_rows(columns: tuple[str, ...], rows: list[tuple[Any, ...]], fmt: str) -> str:
    """Render query results as an aligned table, CSV or JSON (an array of objects)."""
    if fmt == "json":
        return json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=None)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        w.writerows(["" if v is None else v for v in r] for r in rows)
        return buf.getvalue().rstrip("\n")
    cells = [[str(c) for c in columns]] + [["NULL" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(
        help="Data-subject requests and PII/secret scans on the stored telemetry.", no_args_is_help=True
    )
    app.add_typer(data_app, name="data")

    @app.command("migrate")
    def migrate_cmd(
        url: str | None = typer.Option(None, help=_URL_HELP),
        apply_retention: bool = typer.Option(False, help="re-apply the configured TTLs to existing tables"),
        roles: bool = typer.Option(False, help="also create the writer and analyst roles (server only)"),
    ) -> None:
        """Apply the pending schema migrations (recorded in schema_migrations)."""
        from tripwire.sinks.migrations import apply_retention as retention
        from tripwire.sinks.migrations import migrate
        from tripwire.sinks.roles import create_roles
        from tripwire.sinks.store import open_store

        s = _settings()
        with open_store(_url(url)) as store:
            applied = migrate(store, prompt_ttl_days=s.prompt_ttl_days, call_ttl_days=s.call_ttl_days)
            if apply_retention:
                retention(store, prompt_ttl_days=s.prompt_ttl_days, call_ttl_days=s.call_ttl_days)
            if roles:
                if store.backend != "clickhouse":
                    raise _fail("roles exist only on a ClickHouse server")
                create_roles(store)
            typer.echo(f"database {store.database}: applied {applied or 'nothing (up to date)'}")

    @app.command("sink")
    def sink_cmd(
        url: str | None = typer.Option(None, help=_URL_HELP),
        bootstrap: str | None = typer.Option(None, help="Kafka bootstrap servers (default TRIPWIRE_KAFKA_BOOTSTRAP)"),
        group: str | None = typer.Option(None, help="consumer group (default tripwire-sink)"),
        topic_prefix: str | None = typer.Option(None, help="topic name prefix"),
        max_seconds: float | None = typer.Option(None, help="stop after this many seconds"),
    ) -> None:
        """Consume the tripwire topics into ClickHouse (commits only after ClickHouse accepted)."""
        import signal

        from tripwire.core import tune_gc
        from tripwire.core.kafka_security import KafkaAuthError
        from tripwire.sinks.config import SinkSettings
        from tripwire.sinks.kafka_sink import KafkaSink
        from tripwire.sinks.migrations import migrate
        from tripwire.sinks.store import open_store

        given = {"bootstrap": bootstrap, "group_id": group, "topic_prefix": topic_prefix}
        overrides: dict[str, Any] = {k: v for k, v in given.items() if v}
        settings = SinkSettings(**overrides)
        ch = _settings()
        with open_store(_url(url)) as store:
            migrate(store, prompt_ttl_days=ch.prompt_ttl_days, call_ttl_days=ch.call_ttl_days)
            if settings.test_fail_inserts_while is not None:  # TEST HOOK, off unless the variable is set
                from tripwire.sinks._test_hooks import FailInsertsWhile

                sink = KafkaSink(FailInsertsWhile(store, settings.test_fail_inserts_while), settings)
            else:
                sink = KafkaSink(store, settings)
            signal.signal(signal.SIGTERM, lambda *_: sink.stop())
            tune_gc()  # a backlog's buffered messages are young objects the default collector walks again and again
            try:
                sink.run(max_seconds=max_seconds)
            except KeyboardInterrupt:
                sink.stop()
            except KafkaAuthError as e:
                typer.echo(f"error: {e}", err=True)
                raise typer.Exit(1) from e
            st = sink.sink.stats
            typer.echo(
                f"rows_inserted={st.rows_inserted} deduplicated={st.deduplicated} "
                f"dead_lettered={st.dead_lettered} insert_failures={st.insert_failures} commits={sink.commits}"
            )

    @app.command("sql")
    def sql_cmd(
        query: str = typer.Argument(..., help="one read-only query (SELECT, WITH, EXPLAIN, SHOW TABLES, DESCRIBE)"),
        fmt: str = typer.Option("table", "--format", help="table | csv | json"),
        url: str | None = typer.Option(None, help=_URL_HELP),
        max_rows: int | None = typer.Option(None, help="row limit (default TRIPWIRE_CLICKHOUSE_QUERY_MAX_ROWS)"),
        timeout: float | None = typer.Option(None, help="time limit in seconds"),
    ) -> None:
        """Run an analyst query read-only, with a row limit and a time limit."""
        from tripwire.sinks.exceptions import StoreError
        from tripwire.sinks.sql_guard import check_readonly_sql
        from tripwire.sinks.store import QueryLimits, open_store

        if fmt not in ("table", "csv", "json"):
            raise _fail("--format must be table, csv or json")
        s = _settings()
        limits = QueryLimits(max_rows=max_rows or s.query_max_rows, timeout_s=timeout or s.query_timeout_s)
        try:
            with open_store(_url(url), readonly=True, limits=limits, create=False) as store:
                res = store.query(check_readonly_sql(store, query))
        except StoreError as e:
            raise _fail(str(e), 1) from e
        typer.echo(format_rows(res.columns, res.rows, fmt))
        if res.truncated:
            typer.echo(f"(truncated to {limits.max_rows} rows)", err=True)

    @data_app.command("delete")
    def delete_cmd(
        principal: str | None = typer.Option(None, help="delete every row of this principal"),
        tenant: str | None = typer.Option(None, help="delete every row of this tenant"),
        purge: bool = typer.Option(False, help="also rewrite the parts now (APPLY DELETED MASK)"),
        url: str | None = typer.Option(None, help=_URL_HELP),
    ) -> None:
        """Delete one principal's or one tenant's rows from every table, and verify they are gone."""
        from tripwire.sinks.deletion import DeletionIncompleteError, delete_subject
        from tripwire.sinks.store import open_store

        if (principal is None) == (tenant is None):
            raise _fail("give exactly one of --principal or --tenant")
        with open_store(_url(url), create=False) as store:
            try:
                report = delete_subject(store, principal=principal, tenant=tenant, purge=purge)
            except DeletionIncompleteError as e:
                raise _fail(str(e), 1) from e
        rows = [(t, n, report.remaining[t]) for t, n in report.deleted.items()]
        typer.echo(format_rows(("table", "deleted", "remaining"), rows, "table"))
        typer.echo(f"deleted {report.total} rows of {report.column} {report.value_hint}; none remain")

    @data_app.command("scan")
    def scan_cmd(
        since: str | None = typer.Option(None, help="scan rows from this time on (ISO 8601, UTC)"),
        until: str | None = typer.Option(None, help="scan rows before this time (ISO 8601, UTC)"),
        table: list[str] = typer.Option([], "--table", help="scan only these tables (repeatable; default all)"),
        detectors: str = typer.Option(
            "secret,email,card,iban,phone", help="detector families, comma-separated (secret = every credential)"
        ),
        redact: bool = typer.Option(False, "--redact", help="mask what is found, then scan again to verify"),
        url: str | None = typer.Option(None, help=_URL_HELP),
    ) -> None:
        """Run the redaction detectors over the stored text columns; exit 1 if anything is found."""
        from datetime import UTC, datetime

        from tripwire.redaction import Redactor
        from tripwire.sinks.scan import ScanIncompleteError, redact_findings, scan
        from tripwire.sinks.store import open_store

        def when(v: str | None, name: str) -> datetime | None:
            if v is None:
                return None
            try:
                t = datetime.fromisoformat(v)
            except ValueError as e:
                raise _fail(f"--{name}: expected an ISO 8601 time, got {v!r}") from e
            return t if t.tzinfo else t.replace(tzinfo=UTC)

        lo, hi = when(since, "since"), when(until, "until")
        try:
            red = Redactor(detectors=[d.strip() for d in detectors.split(",") if d.strip()])
        except ValueError as e:
            raise _fail(str(e)) from e
        with open_store(_url(url), create=False) as store:
            report = scan(store, red, since=lo, until=hi, tables=table or None)
            rows = report.lines()
            if rows:
                typer.echo(format_rows(("table", "column", "family", "findings", "run_ids"), rows, "table"))
            whole = f"; scanned whole (no time column): {', '.join(report.unbounded)}" if report.unbounded else ""
            typer.echo(
                f"{report.total} findings in {sum(report.rows.values())} values; {len(report.tables)} tables, "
                f"{report.candidates} candidate rows{whole}"
            )
            if not report.total:
                return
            if not redact:
                raise typer.Exit(1)
            try:
                result = redact_findings(store, report, red, since=lo, until=hi)
            except ScanIncompleteError as e:
                raise _fail(str(e), 1) from e
        typer.echo(
            f"masked {sum(result.masked.values())} values, deleted the rows of {sum(result.deleted.values())} "
            f"(sorting-key columns); second scan: {result.after.total} findings"
        )

    @app.command("gate")
    def gate_cmd(
        agent: str = typer.Option(..., help="agent_id"),
        version: str = typer.Option(..., help="agent_version"),
        min_success: float = typer.Option(0.95, help="minimum run success rate"),
        max_violations: float = typer.Option(0.005, help="maximum policy-violation rate"),
        min_runs: int = typer.Option(200, help="minimum number of finished runs"),
        tenant: str = typer.Option("", help="restrict to one tenant ('' = all)"),
        url: str | None = typer.Option(None, help=_URL_HELP),
    ) -> None:
        """Release gate: exit 1 when the version does not meet the bar (exit 0 when it does)."""
        from tripwire.sinks.exceptions import GateError
        from tripwire.sinks.gate import GateThresholds, evaluate_gate
        from tripwire.sinks.store import open_store

        try:
            thresholds = GateThresholds(min_success, max_violations, min_runs)
        except GateError as e:
            raise _fail(str(e)) from e
        with open_store(_url(url), readonly=True, create=False) as store:
            verdict = evaluate_gate(store, agent, version, thresholds, tenant=tenant)
        rows = [
            (
                c.name,
                f"{c.observed:.4f}" if c.name != "runs" else str(int(c.observed)),
                c.bar,
                "PASS" if c.passed else "FAIL",
            )
            for c in verdict.checks
        ]
        typer.echo(f"release gate for {agent} {version}")
        typer.echo(format_rows(("check", "observed", "bar", "result"), rows, "table"))
        typer.echo(f"verdict: {'PASS' if verdict.passed else 'FAIL'}")
        sys.stdout.flush()
        if not verdict.passed:
            raise typer.Exit(1)
