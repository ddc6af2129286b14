"""Roles on the server side, under streamlit's AppTest with ``st.user`` populated as the OIDC
sign-in would (``AppTest.user``), against seeded chdb data and the role authorizer ``serve``
installs.

The forged interaction: a viewer's page has no trip controls, and streamlit never runs the
callback of a widget it did not render, so a client cannot forge a click on the absent button.
What a forger can reach is the action behind it. The test puts a pending trip into the viewer's
session (what the "Disable" button's callback would have stored) and presses Confirm: the page
calls ``actions.trip_switch`` with the viewer's identity, exactly the server path an on-call
user's trip takes, and the role check there refuses it, audits the refusal with the viewer's
email, and nothing is signed, delivered or written to ``killswitch_audit``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.dash_seed import seed
from tests.helpers import uid
from tripwire.dashboard import DashboardSettings, actions, data, roles
from tripwire.dashboard.errors import NotAuthorizedError
from tripwire.dashboard.killswitch import PENDING
from tripwire.sinks.migrations import migrate
from tripwire.sinks.store import Store, open_store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
VIEWER = "viewer@example.com"
ONCALL = "oncall@example.com"
ANALYST = "ana@example.com"
ROLES = f"version: 2\nusers:\n  {VIEWER}: [viewer]\ngroups:\n  sre: [on-call]\n  data: [analyst]\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from tripwire.killswitch import generate_keypair

    tmp = tmp_path_factory.mktemp("auth_roles")
    folder = Path(tempfile.mkdtemp(prefix="auth_chdb_"))
    store = open_store(f"chdb://{folder}?database={uid('auth')}")
    migrate(store)
    seed(store)
    (tmp / "roles.yaml").write_text(ROLES)
    generate_keypair(tmp / "keys")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH", str(tmp / "keys" / "killswitch_ed25519.pem"))
    delivered: list = []
    data.set_store(store)
    data.set_settings(DashboardSettings(auth="oidc", roles_path=tmp / "roles.yaml", operator="nobody"))
    data.set_command_sink(delivered.append)
    actions.set_authorizer(roles.authorize_role)
    yield {"store": store, "delivered": delivered}
    actions.set_authorizer(None)
    data.set_command_sink(None)
    data.set_settings(None)
    data.set_store(None)
    mp.undo()
    store.close()
    shutil.rmtree(folder, ignore_errors=True)


def user(email: str, *groups: str) -> dict:
    return {"is_logged_in": True, "email": email, "email_verified": True, "groups": list(groups)}


def killswitch_page(who: dict) -> AppTest:
    at = AppTest.from_string(
        "from tripwire.dashboard import _signin, killswitch\n_signin.gate()\nkillswitch.render()\n", default_timeout=60)
    at.user = who
    return at.run()


def dashboard_audit(store: Store, actor: str) -> list[tuple]:
    return [tuple(r.values()) for r in store.query(
        "SELECT role, authenticated, action, decision, reason FROM dashboard_audit "
        "WHERE actor = {a:String} ORDER BY at",
        {"a": actor}).dicts()]


def ks_audit(store: Store, actor: str) -> list[tuple]:
    return [tuple(r.values()) for r in store.query(
        "SELECT scope, action, issued_by FROM killswitch_audit WHERE actor = {a:String} ORDER BY issued_at",
        {"a": actor}).dicts()]


def button_keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key}


def test_a_visitor_not_signed_in_gets_only_the_sign_in_page(env: dict) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["tripwire"]
    assert [b.label for b in at.button] == ["Sign in"]
    assert len(at.dataframe) == 0 and len(at.metric) == 0 and len(at.sidebar) == 0


def test_a_signed_in_user_without_a_role_is_refused_everything(env: dict) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.user = user("stranger@example.com", "visitors")
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Signed in as stranger@example.com, but no role is granted to you. Ask an admin to add you to the "
        "dashboard's roles file."]
    assert [b.label for b in at.button] == ["Sign out"]
    assert len(at.dataframe) == 0 and len(at.metric) == 0


def test_viewer_has_no_trip_controls_and_a_forged_trip_is_refused_and_audited(env: dict) -> None:
    store = env["store"]
    at = killswitch_page(user(VIEWER, "readers"))
    assert not at.exception
    assert "Signed in as **viewer@example.com** (viewer)" in [c.value for c in at.sidebar.caption]
    keys = button_keys(at)
    assert not any(k.startswith(("ks_quick_", "ks_reset_")) for k in keys), keys
    assert "Tripping and resetting kill switches needs the on-call role." in [c.value for c in at.caption]
    # forge: the pending command the absent "Disable" button would have stored, then Confirm
    at.session_state[PENDING] = {"scope": "agent:refund-assistant", "action": "disable_autonomy", "ttl": "",
                                 "reason": "forged"}
    at.run()
    at.button(key="ks_confirm").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Trip disable_autonomy: viewer@example.com (role viewer) may not killswitch.trip: it needs role on-call "
        "or admin"]
    assert dashboard_audit(store, VIEWER) == [
        ("viewer", True, "killswitch.trip", "refused",
         "viewer@example.com (role viewer) may not killswitch.trip: it needs role on-call or admin")]
    assert ks_audit(store, VIEWER) == []
    assert env["delivered"] == []


def test_oncall_trips_and_resets_and_the_audit_carries_their_email(env: dict) -> None:
    store, delivered = env["store"], env["delivered"]
    delivered.clear()
    at = killswitch_page(user(ONCALL, "sre"))
    assert not at.exception
    at.button(key="ks_quick_0").click().run()
    scope = at.session_state[PENDING]["scope"]
    at.button(key="ks_confirm").click().run()
    assert not at.exception, [e.value for e in at.error]
    reset = [b for b in at.button if b.label == f"Reset {scope}"]
    assert len(reset) == 1
    reset[0].click().run()
    at.button(key="ks_confirm").click().run()
    assert not at.exception and not at.error
    assert [(c.scope, c.action.value, c.issued_by) for c in delivered] == [
        (scope, "disable_autonomy", ONCALL), (scope, "resume", ONCALL)]
    assert ks_audit(store, ONCALL) == [(scope, "disable_autonomy", ONCALL), (scope, "resume", ONCALL)]
    assert [r[:4] for r in dashboard_audit(store, ONCALL)] == [
        ("on-call", True, "killswitch.trip", "allowed"), ("on-call", True, "killswitch.reset", "allowed")]


def test_the_sql_page_is_only_in_the_navigation_of_analysts_and_admins(env: dict) -> None:
    def nav(who: dict) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.user = who
        return at.run()

    # the navigation is not an element AppTest lists; the page registry it ran with is
    def pages(at: AppTest) -> set[str]:
        return {str(p["page_name"]) for p in at._registered_pages.values()}

    read_only = {"Overview", "Runs", "Alerts", "Kill switch", "Cost"}
    assert pages(nav(user(VIEWER))) == read_only
    assert pages(nav(user(ONCALL, "sre"))) == read_only
    assert pages(nav(user(ANALYST, "data"))) == read_only | {"SQL"}
    assert pages(nav(user("both@example.com", "data", "sre"))) == read_only | {"SQL"}


def test_an_analyst_cannot_trip_or_reset(env: dict) -> None:
    """Issue 21, finding 4: roles were a ladder, so an analyst could trip and reset kill switches."""
    store, delivered = env["store"], env["delivered"]
    delivered.clear()
    at = killswitch_page(user(ANALYST, "data"))
    assert not at.exception
    assert not any(k.startswith(("ks_quick_", "ks_reset_")) for k in button_keys(at))
    for action, pending in (("Trip disable_autonomy", {"scope": "agent:refund-assistant",
                                                       "action": "disable_autonomy", "ttl": "", "reason": "forged"}),
                            ("Reset agent:refund-assistant", {"scope": "agent:refund-assistant", "action": "resume",
                                                             "ttl": "", "reason": "forged"})):
        at.session_state[PENDING] = pending
        at.run()
        at.button(key="ks_confirm").click().run()
        assert not at.exception
        assert len(at.error) == 1 and at.error[0].value.endswith(
            f"{ANALYST} (role analyst) may not killswitch.{'reset' if pending['action'] == 'resume' else 'trip'}: "
            "it needs role on-call or admin"), (action, [e.value for e in at.error])
    assert [r[:4] for r in dashboard_audit(store, ANALYST)] == [
        ("analyst", True, "killswitch.trip", "refused"), ("analyst", True, "killswitch.reset", "refused")]
    assert ks_audit(store, ANALYST) == [] and delivered == []


def test_on_call_cannot_use_the_sql_console(env: dict) -> None:
    at = AppTest.from_string(
        "from tripwire.dashboard import _signin, console\n_signin.gate()\nconsole.render()\n", default_timeout=60)
    at.user = user(ONCALL, "sre")
    at.run()
    assert not at.exception
    assert [i.value for i in at.info] == ["The SQL console needs the analyst role."]
    assert not [b for b in at.button if b.key == "sql_run"]
    from tripwire.dashboard import console

    with pytest.raises(NotAuthorizedError, match=r"may not sql\.query: it needs role analyst or admin"):
        console.run_readonly("SELECT 1", max_rows=10, timeout_s=5)  # no session: nobody, no role


def test_an_unverified_email_gets_no_role(env: dict) -> None:
    """Issue 21, finding 4: an e-mail was trusted unless ``email_verified`` was explicitly false."""
    for claims in ({"is_logged_in": True, "email": VIEWER},
                   {"is_logged_in": True, "email": VIEWER, "email_verified": False}):
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.user = claims
        at.run()
        assert not at.exception
        assert [e.value for e in at.error] == [
            f"Signed in as {VIEWER}, but no role is granted to you. Ask an admin to add you to the "
            "dashboard's roles file."]
        assert len(at.dataframe) == 0 and len(at.metric) == 0


def test_the_cli_refuses_dev_mode_off_loopback(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tripwire.cli", "dashboard", "--store", f"chdb://{tmp_path / 'c'}",
         "--address", "0.0.0.0", "--port", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "error: development mode (no sign-in) may only bind to 127.0.0.1 or localhost, not '0.0.0.0'" in out.stderr


def test_dev_mode_shows_the_banner_and_acts_as_the_operator_on_loopback_only(env: dict) -> None:
    from streamlit import config as st_config

    data.set_settings(data.settings().model_copy(update={"auth": "dev"}))
    before = st_config.get_option("server.address")
    try:
        st_config.set_option("server.address", "127.0.0.1")
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        assert not at.exception
        assert len(at.warning) >= 1 and at.warning[0].value.startswith("**Development mode: no sign-in.** Everyone "
                                                                       "who can reach this page acts as `nobody`")
        assert len(at.metric) > 0  # the Overview page rendered under the banner
        st_config.set_option("server.address", "0.0.0.0")
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        assert [e.value for e in at.error] == [
            "Development mode (no sign-in) is refused: this server is not bound to 127.0.0.1."]
        assert len(at.metric) == 0 and len(at.warning) == 0
    finally:
        st_config.set_option("server.address", before)
        data.set_settings(data.settings().model_copy(update={"auth": "oidc"}))
