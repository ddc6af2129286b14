"""``tripwire notify`` argument handling: --check lists routes; bad files and missing secrets exit 2 with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tripwire.cli import app

pytestmark = pytest.mark.unit

ROUTES = """routes:
  - name: pager
    channel: pagerduty
    routing_key_secret: pd
    match: {min_severity: critical}
  - name: hook
    channel: webhook
    url_secret: hook_url
    hmac_key_secret: hook_key
"""


def test_check_lists_routes_without_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "routes.yaml"
    f.write_text(ROUTES)
    monkeypatch.setenv("TRIPWIRE_NOTIFY_SECRETS__PD", "R0ut1ngKeyR0ut1ngKeyR0ut1ngKey32")
    monkeypatch.setenv("TRIPWIRE_NOTIFY_SECRETS__HOOK_URL", "https://hooks.example/very-secret-path")
    monkeypatch.setenv("TRIPWIRE_NOTIFY_SECRETS__HOOK_KEY", "hmac-secret")
    result = CliRunner().invoke(app, ["notify", "--routes", str(f), "--check"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "route pager: channel=pagerduty match={'min_severity': 'critical'}",
        "route hook: channel=webhook match={}",
    ]


def test_missing_secret_and_bad_file_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TRIPWIRE_NOTIFY_SECRETS__PD", "TRIPWIRE_NOTIFY_SECRETS"):
        monkeypatch.delenv(var, raising=False)
    f = tmp_path / "routes.yaml"
    f.write_text(ROUTES)
    result = CliRunner().invoke(app, ["notify", "--routes", str(f), "--check"])
    assert result.exit_code == 2
    assert "route 'pager': secret 'pd' for routing_key is not set (set TRIPWIRE_NOTIFY_SECRETS__PD)" in result.output
    result = CliRunner().invoke(app, ["notify", "--routes", str(tmp_path / "absent.yaml"), "--check"])
    assert result.exit_code == 2 and "cannot read" in result.output
    result = CliRunner().invoke(app, ["notify", "--routes", str(f), "--max-attempts", "0", "--check"])
    assert result.exit_code == 2 and "max_attempts" in result.output
