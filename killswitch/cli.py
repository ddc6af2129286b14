"""On-call commands: ``tripwire keys generate`` and ``tripwire killswitch trip|reset|status|audit``.

Settings come from :class:`KillSwitchConfig` (env ``TRIPWIRE_KILLSWITCH_*``); options override
the key paths, the bootstrap and the topic. Key material is never printed or logged: only paths
and key ids.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

keys_app = typer.Typer(help="Ed25519 keys that sign kill-switch commands.", no_args_is_help=True)
ks_app = typer.Typer(help="Trip, reset and inspect kill switches (signed commands on a compacted topic).",
                     no_args_is_help=True)

ACTIONS = ("disable_autonomy", "force_approval", "freeze_tool", "throttle")
PUBLISH_TIMEOUT_S = 15.0


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(ks_app, name="killswitch")


def _config(bootstrap: str | None, topic: str | None, private_key: Path | None = None,
            public_key: Path | None = None) -> Any:
    from tripwire.killswitch.config import KillSwitchConfig

    overrides: dict[str, Any] = {}
    if bootstrap:
        overrides["bootstrap"] = bootstrap
    if topic:
        overrides["topic"] = topic
    if private_key:
        overrides["private_key_path"] = private_key
    if public_key:
        overrides["public_key_path"] = public_key
        overrides["public_key"] = None
    base = KillSwitchConfig()
    return base.model_copy(update=overrides) if overrides else base


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


def _signer(config: Any) -> Any:
    from tripwire.killswitch.signing import KillSwitchKeyError, build_signer

    if config.private_key_path is None:
        raise _fail("no signing key: pass --key or set TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH (tripwire keys generate)")
    try:
        return build_signer(config)
    except KillSwitchKeyError as e:
        raise _fail(str(e)) from e


def _verifier(config: Any) -> Any:
    """The public key from the config; else the one derived from the private key (same machine)."""
    from tripwire.core.errors import ConfigError
    from tripwire.killswitch.signing import CommandVerifier, KillSwitchKeyError, build_verifier

    try:
        return build_verifier(config)
    except ConfigError:
        if config.private_key_path is None:
            raise _fail("no public key: set TRIPWIRE_KILLSWITCH_PUBLIC_KEY_PATH or pass --public-key") from None
    except KillSwitchKeyError as e:
        raise _fail(str(e)) from e
    return CommandVerifier([_signer(config).public_key()])


# -- keys ----------------------------------------------------------------------------------------


@keys_app.command("generate")
def keys_generate(
    out: Path = typer.Option(Path(".tripwire/keys"), "--out", help="folder for the key files"),
    force: bool = typer.Option(False, "--force", help="overwrite existing key files"),
) -> None:
    """Write a new Ed25519 keypair: the private key (mode 0600) for the control plane, the public key for SDKs."""
    from tripwire.killswitch.signing import KillSwitchKeyError, generate_keypair

    try:
        private, public, key_id = generate_keypair(out, overwrite=force)
    except KillSwitchKeyError as e:
        raise _fail(str(e)) from e
    typer.echo(f"key_id       {key_id}")
    typer.echo(f"private key  {private}  (0600; control plane and on-call only)")
    typer.echo(f"public key   {public}  (give to agents: TRIPWIRE_KILLSWITCH_PUBLIC_KEY_PATH)")


# -- trip / reset ---------------------------------------------------------------------------------


def _publish(config: Any, signer: Any, command: Any, timeout: float = PUBLISH_TIMEOUT_S) -> Any:
    """Sign ``command`` and publish it through the one ``CommandPublisher``; returns the signed command."""
    from tripwire.killswitch.errors import CommandPublishError
    from tripwire.killswitch.publisher import CommandPublisher

    publisher = CommandPublisher(config, signer, timeout_s=timeout, client_id="tripwire-killswitch-cli")
    try:
        return publisher.publish(command)
    except CommandPublishError as e:
        raise _fail(f"the command was not delivered to {config.topic}: {e}") from e


def _issuer(config: Any, issued_by: str | None) -> str:
    return issued_by or config.issued_by or f"user:{getpass.getuser()}"


@ks_app.command("trip")
def trip(
    scope: str = typer.Option(..., "--scope", help="global | tenant:T | agent:A | agent:A@V | tool:X | agent:A/tool:X"
                              " | credential:F"),
    action: str = typer.Option(..., "--action", help="disable_autonomy | force_approval | freeze_tool | throttle"),
    reason: str = typer.Option(..., "--reason", help="why (recorded with the command; no PII)"),
    ttl: str | None = typer.Option(None, "--ttl", help="lifetime such as 30m or 2h (default: until reset)"),
    min_risk: str | None = typer.Option(None, "--min-risk", help="force_approval: low | medium | high"),
    per_minute: int | None = typer.Option(None, "--per-minute", help="throttle: allowed calls per minute"),
    issued_by: str | None = typer.Option(None, "--issued-by", help="who trips it (default: user:<os user>)"),
    key: Path | None = typer.Option(None, "--key", help="private key file (else TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH)"),
    bootstrap: str | None = typer.Option(None, "--bootstrap"),
    topic: str | None = typer.Option(None, "--topic"),
) -> None:
    """Trip a kill switch: sign a command and publish it on the compacted topic (key = scope)."""
    from tripwire.killswitch.commands import new_command, parse_duration

    if action not in ACTIONS:
        raise _fail(f"--action must be one of {', '.join(ACTIONS)} (use `killswitch reset` to resume)")
    if action == "force_approval" and min_risk is None:
        min_risk = "low"
    config = _config(bootstrap, topic, private_key=key)
    signer = _signer(config)
    try:
        command = new_command(scope=scope, action=action, reason=reason, issued_by=_issuer(config, issued_by),
                              ttl=parse_duration(ttl), min_risk=min_risk, throttle_per_minute=per_minute)
    except ValueError as e:
        raise _fail(str(e)) from e
    command = _publish(config, signer, command)
    expiry = command.expires_at.isoformat() if command.expires_at else "until reset"
    typer.echo(f"tripped {command.action.value} on {command.scope} (command {command.command_id}, {expiry})")


@ks_app.command("reset")
def reset(
    scope: str = typer.Option(..., "--scope", help="the scope to resume"),
    reason: str = typer.Option("reset by on-call", "--reason"),
    issued_by: str | None = typer.Option(None, "--issued-by"),
    key: Path | None = typer.Option(None, "--key", help="private key file (else TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH)"),
    bootstrap: str | None = typer.Option(None, "--bootstrap"),
    topic: str | None = typer.Option(None, "--topic"),
) -> None:
    """Resume a scope: publish a signed ``resume`` that supersedes the scope's switch."""
    from tripwire.killswitch.commands import new_command

    config = _config(bootstrap, topic, private_key=key)
    signer = _signer(config)
    try:
        command = new_command(scope=scope, action="resume", reason=reason, issued_by=_issuer(config, issued_by))
    except ValueError as e:
        raise _fail(str(e)) from e
    command = _publish(config, signer, command)
    typer.echo(f"resumed {command.scope} (command {command.command_id})")


# -- status / audit -------------------------------------------------------------------------------


def _replay(config: Any, timeout: float) -> tuple[Any, list[tuple[Any, Any, Any]]]:
    """Read the topic and feed a fresh state record by record, judged at each record's own time.

    Returns the state (judged now) and, per record, (message, command or None, ApplyResult).
    """
    from tripwire.killswitch.listener import read_topic
    from tripwire.killswitch.state import KillSwitchState, Rejection
    from tripwire.schemas import DecodeError, KillSwitchCommand, decode

    verifier = _verifier(config)
    state = KillSwitchState(verifier, max_clock_skew_s=config.max_clock_skew_s)
    try:
        messages = read_topic(config, timeout=timeout)
    except Exception as e:
        raise _fail(f"cannot read {config.topic} at {config.bootstrap}: {e}") from e
    messages.sort(key=lambda m: (m.timestamp()[1], m.partition(), m.offset()))
    rows: list[tuple[Any, Any, Any]] = []
    for m in messages:
        at = datetime.fromtimestamp(m.timestamp()[1] / 1000, UTC)
        key = m.key().decode("utf-8", "replace") if m.key() is not None else None
        if m.value() is None:
            rows.append((m, None, state.reject(Rejection.TOMBSTONE)))
            continue
        try:
            command = decode(m.value())
        except DecodeError as e:
            rows.append((m, None, state.reject(Rejection.MALFORMED, e.reason)))
            continue
        if not isinstance(command, KillSwitchCommand):
            rows.append((m, None, state.reject(Rejection.MALFORMED, type(command).__name__)))
            continue
        rows.append((m, command, state.apply(command, key=key, now=at)))
    return state, rows


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return f"-{_age(-delta)}"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"


@ks_app.command("status")
def status(
    all_: bool = typer.Option(False, "--all", help="also show resumed and expired scopes"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    public_key: Path | None = typer.Option(None, "--public-key"),
    key: Path | None = typer.Option(None, "--key", help="private key (its public half verifies if no public key)"),
    bootstrap: str | None = typer.Option(None, "--bootstrap"),
    topic: str | None = typer.Option(None, "--topic"),
    timeout: float = typer.Option(15.0, "--timeout"),
) -> None:
    """The kill switches in force (verified), with age and expiry, read from the compacted topic."""
    from rich.console import Console
    from rich.table import Table

    config = _config(bootstrap, topic, private_key=key, public_key=public_key)
    state, _rows = _replay(config, timeout)
    now = datetime.now(UTC)
    switches = sorted(state.switches().values(), key=lambda s: s.issued_at)
    shown = [s for s in switches if all_ or s.in_force(now)]
    if as_json:
        for s in shown:
            typer.echo(json.dumps({
                "scope": s.scope, "action": s.action.value, "in_force": s.in_force(now),
                "min_risk": s.min_risk.value if s.min_risk else None, "per_minute": s.throttle_per_minute,
                "issued_at": s.issued_at.isoformat(), "expires_at": s.expires_at.isoformat() if s.expires_at else None,
                "issued_by": s.issued_by, "reason": s.reason, "alert_id": s.alert_id, "command_id": s.command_id,
            }, sort_keys=True))
        return
    table = Table(title=f"kill switches on {config.topic}" + (" (all scopes)" if all_ else " in force"))
    for column in ("scope", "action", "detail", "age", "expires", "issued by", "reason", "alert"):
        table.add_column(column)
    for s in shown:
        detail = (f"min_risk={s.min_risk.value}" if s.min_risk else "") + (
            f"{s.throttle_per_minute}/min" if s.throttle_per_minute else "")
        if s.expires_at is None:
            expires = "never" if s.action.value != "resume" else "-"
        else:
            left = s.expires_at - now
            expires = f"in {_age(left)}" if left > timedelta(0) else f"expired {_age(-left)} ago"
        action = s.action.value if s.in_force(now) or s.action.value == "resume" else f"{s.action.value} (lapsed)"
        table.add_row(s.scope, action, detail, _age(now - s.issued_at), expires, s.issued_by, s.reason,
                      s.alert_id or "")
    Console().print(table)
    if not shown:
        typer.echo("no kill switch in force")


@ks_app.command("audit")
def audit(
    limit: int = typer.Option(0, "--limit", help="only the newest N records (0 = all)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    public_key: Path | None = typer.Option(None, "--public-key"),
    key: Path | None = typer.Option(None, "--key"),
    bootstrap: str | None = typer.Option(None, "--bootstrap"),
    topic: str | None = typer.Option(None, "--topic"),
    timeout: float = typer.Option(15.0, "--timeout"),
) -> None:
    """Every record on the kill-switch topic, oldest first, and whether an SDK accepts or rejects it (and why).

    Compaction keeps only the newest record per scope in the long run; the ClickHouse audit table keeps all."""
    from rich.console import Console
    from rich.table import Table

    config = _config(bootstrap, topic, private_key=key, public_key=public_key)
    _state, rows = _replay(config, timeout)
    if limit > 0:
        rows = rows[-limit:]
    records = []
    for m, c, result in rows:
        records.append({
            "at": datetime.fromtimestamp(m.timestamp()[1] / 1000, UTC).isoformat(timespec="milliseconds"),
            "partition": m.partition(), "offset": m.offset(),
            "key": m.key().decode("utf-8", "replace") if m.key() is not None else None,
            "scope": c.scope if c else None, "action": c.action.value if c else None,
            "issued_by": c.issued_by if c else None, "reason": c.reason if c else None,
            "alert_id": c.alert_id if c else None, "command_id": c.command_id if c else None,
            "expires_at": c.expires_at.isoformat() if c and c.expires_at else None,
            "verdict": "accepted" if result.accepted else "rejected",
            "rejection": result.rejection.value if result.rejection else None,
        })
    if as_json:
        for r in records:
            typer.echo(json.dumps(r, sort_keys=True))
        return
    table = Table(title=f"kill-switch audit of {config.topic} ({len(records)} records)")
    for column in ("at", "p:offset", "scope", "action", "issued by", "reason", "alert", "verdict"):
        table.add_column(column)
    for r in records:
        verdict = r["verdict"] if r["rejection"] is None else f"rejected: {r['rejection']}"
        table.add_row(r["at"], f"{r['partition']}:{r['offset']}", r["scope"] or r["key"] or "", r["action"] or "",
                      r["issued_by"] or "", r["reason"] or "", r["alert_id"] or "", verdict)
    Console().print(table)


__all__ = ["register"]
