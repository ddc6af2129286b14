"""Sign-in end to end: a real OpenID Connect provider (npm ``oidc-provider`` under Node) on
127.0.0.1, ``tripwire dashboard --secrets ... --roles ...`` serving seeded chdb data, and headless
Chromium signing in through the real redirect flow (the provider's login and consent forms).

- a visitor who is not signed in sees only the sign-in page, whatever the path;
- a viewer sees the pages but no trip / reset controls and no SQL console;
- an on-call user disables an agent's autonomy and resets it; the signed commands on the broker
  and the ``killswitch_audit`` rows carry their email, and ``dashboard_audit`` records both actions.

The forged interaction (a viewer's trip reaching the server) is in
``tests/integration/test_auth_roles.py``: streamlit never runs the callback of a widget it did not
render, so the honest forgery is the one that reaches the action layer with the viewer's identity.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_dash_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SETTLED,
    _free_port,
    _healthy,
    _helper,
    check_trip_and_reset,
)
from tests.helpers import uid, wait_until
from tests.oidc.provider import OidcUser, oidc_provider

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "auth"
VIEWER = "viewer@example.com"
ONCALL = "oncall@example.com"
ROLES = f"""
version: 2
claim: groups
default_roles: []
users:
  {VIEWER}: [viewer]
groups:
  sre: [on-call]
  data: [analyst]
"""


@pytest.fixture
def served(tmp_path: Path, kafka_bootstrap: str) -> Iterator[dict]:
    from tripwire.killswitch import generate_keypair

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    url = f"chdb://{tmp_path / 'chdb'}?database={uid('auth_e2e')}"
    expected = _helper("seed", url)
    _, public, _ = generate_keypair(tmp_path / "keys")
    topic = uid("t_ks")
    port, op_port = _free_port(), _free_port()
    base = f"http://127.0.0.1:{port}"
    users = [OidcUser(VIEWER, ("readers",)), OidcUser(ONCALL, ("sre",))]
    with oidc_provider(port=op_port, redirect_uri=f"{base}/oauth2callback", users=users,
                       log_path=tmp_path / "oidc.log") as op:
        (tmp_path / "roles.yaml").write_text(ROLES)
        (tmp_path / "secrets.toml").write_text(
            "[auth]\n"
            f'redirect_uri = "{base}/oauth2callback"\n'
            f'cookie_secret = "{secrets.token_hex(32)}"\n'
            f'client_id = "{op.client_id}"\n'
            f'client_secret = "{op.client_secret}"\n'
            f'server_metadata_url = "{op.metadata_url}"\n'
            'client_kwargs = { scope = "openid email profile groups", prompt = "login" }\n'
        )
        env = {**os.environ, "TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH": str(tmp_path / "keys" / "killswitch_ed25519.pem"),
               "TRIPWIRE_KILLSWITCH_TOPIC": topic, "TRIPWIRE_KILLSWITCH_BOOTSTRAP": kafka_bootstrap}
        env.pop("TRIPWIRE_DASHBOARD_OPERATOR", None)
        log_file = (tmp_path / "server.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tripwire.cli", "dashboard", "--store", url, "--port", str(port),
             "--secrets", str(tmp_path / "secrets.toml"), "--roles", str(tmp_path / "roles.yaml")],
            cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: _healthy(base) or proc.poll() is not None, timeout=60, message="dashboard health")
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            yield {**expected, "base": base, "url": url, "topic": topic, "public": public,
                   "bootstrap": kafka_bootstrap, "proc": proc}
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            log_file.close()


def test_sign_in_roles_and_audit_in_chromium(served: dict) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = served["base"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        expect.set_options(timeout=30_000)

        def fresh() -> Page:
            page = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
            page.set_default_timeout(30_000)
            return page

        def settle(page: Page) -> None:
            page.wait_for_function(SETTLED, timeout=60_000)

        def sign_in(page: Page, email: str) -> None:
            page.goto(base)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda u: not u.startswith(base), timeout=30_000)  # at the provider
            page.locator('input[name="login"]').fill(email)
            page.locator('input[name="password"]').fill("any")
            page.get_by_role("button", name="Sign-in").click()
            page.get_by_role("button", name="Continue").click()  # consent to openid email profile groups
            expect(page.get_by_text(f"Signed in as {email}", exact=False)).to_be_visible()
            settle(page)

        # 1. not signed in: only the sign-in page, on any path
        visitor = fresh()
        for path in ("/", "/killswitch", "/sql"):
            visitor.goto(base + path)
            expect(visitor.get_by_text("Sign in to continue")).to_be_visible()
            settle(visitor)
            assert visitor.locator('[data-testid="stSidebarNav"]').count() == 0
            assert visitor.get_by_text("Audit history").count() == 0
            assert visitor.get_by_role("button").filter(has_text="Disable").count() == 0
        visitor.screenshot(path=str(ARTIFACTS / "signin_page.png"))

        # 2. viewer: read-only, no trip / reset controls, no SQL page
        viewer = fresh()
        sign_in(viewer, VIEWER)
        expect(viewer.get_by_text(f"Signed in as {VIEWER} (viewer)", exact=False)).to_be_visible()
        viewer.goto(base + "/killswitch")
        expect(viewer.get_by_text("Tripping and resetting kill switches needs the on-call role.")).to_be_visible()
        settle(viewer)
        expect(viewer.get_by_text("Audit history")).to_be_visible()
        assert viewer.get_by_role("button").filter(has_text="Disable").count() == 0
        assert viewer.get_by_role("button", name=f"Reset {served['active_scope']}").count() == 0
        assert viewer.get_by_text("Trip any scope").count() == 0
        assert viewer.locator('[data-testid="stSidebarNav"]').get_by_text("SQL", exact=True).count() == 0
        viewer.screenshot(path=str(ARTIFACTS / "viewer_killswitch.png"), full_page=True)

        # 3. on-call: disable refund-assistant's autonomy, then reset it
        oncall = fresh()
        sign_in(oncall, ONCALL)
        oncall.goto(base + "/killswitch")
        expect(oncall.get_by_text("Audit history")).to_be_visible()
        settle(oncall)
        oncall.get_by_role("button", name="Disable refund-assistant").click()
        settle(oncall)
        oncall.get_by_role("button", name="Confirm").click()
        expect(oncall.get_by_text("disable_autonomy on agent:refund-assistant issued", exact=False)).to_be_visible()
        oncall.get_by_role("button", name="Reset agent:refund-assistant").click()
        settle(oncall)
        oncall.get_by_role("button", name="Confirm").click()
        expect(oncall.get_by_text("resume on agent:refund-assistant issued", exact=False)).to_be_visible()
        expect(oncall.get_by_role("button", name="Reset agent:refund-assistant")).to_have_count(0)
        oncall.screenshot(path=str(ARTIFACTS / "oncall_killswitch.png"), full_page=True)
        browser.close()

    out = check_trip_and_reset(served, ONCALL)
    assert [(a["actor"], a["role"], a["authenticated"], a["action"], a["decision"]) for a in out["actions"]] == [
        (ONCALL, "on-call", True, "killswitch.trip", "allowed"),
        (ONCALL, "on-call", True, "killswitch.reset", "allowed"),
    ]
