"""The dashboard in a real browser: ``tripwire dashboard`` serving seeded chdb data on a free
localhost port, driven by Playwright on Debian's chromium. One browser session loads every page,
checks key figures in the DOM, trips and resets a kill switch through the UI (the signed
commands land on the real broker's kill-switch topic and in the audit table), tries hostile
input, and saves a screenshot per page under ``test-artifacts/dashboard/``."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import uid, wait_until

pytestmark = pytest.mark.e2e

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
OPERATOR = "oncall:e2e"
SETTLED = """() => !document.querySelector('[data-testid="stStatusWidget"]')
    && document.querySelectorAll('[data-testid^="stSkeleton"]').length === 0
    && document.querySelectorAll('[data-stale="true"]').length === 0"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _helper(mode: str, url: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "tests.dash_seed", mode, url], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def served(tmp_path: Path, kafka_bootstrap: str) -> Iterator[dict]:
    from tripwire.killswitch import generate_keypair

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    url = f"chdb://{tmp_path / 'chdb'}?database={uid('dash_e2e')}"
    expected = _helper("seed", url)
    _, public, _ = generate_keypair(tmp_path / "keys")
    topic = uid("t_ks")
    port = _free_port()
    env = {**os.environ, "TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH": str(tmp_path / "keys" / "killswitch_ed25519.pem"),
           "TRIPWIRE_KILLSWITCH_TOPIC": topic, "TRIPWIRE_KILLSWITCH_BOOTSTRAP": kafka_bootstrap,
           "TRIPWIRE_DASHBOARD_OPERATOR": OPERATOR}
    log_file = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "tripwire.cli", "dashboard", "--store", url, "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(base) or proc.poll() is not None, timeout=60, message="dashboard health")
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        yield {**expected, "base": base, "url": url, "topic": topic, "public": public, "bootstrap": kafka_bootstrap,
               "proc": proc, "log": tmp_path / "server.log"}
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log_file.close()


def _commands(bootstrap: str, topic: str) -> list:
    from tripwire.killswitch import KillSwitchConfig, read_topic
    from tripwire.schemas import decode

    return [decode(m.value()) for m in read_topic(KillSwitchConfig(bootstrap=bootstrap, topic=topic), timeout=10)]


def check_trip_and_reset(served: dict, actor: str) -> dict:
    """After the dashboard disabled refund-assistant's autonomy and reset it: the two signed commands
    are on the real broker's kill-switch topic (keyed by scope, signed by the served key, issued by
    ``actor``) and in the audit table. Stops the server (so its folder is free) and returns the
    helper's audit output for the caller's own checks of the actions log."""
    from tripwire.killswitch import CommandVerifier, load_public_key

    verifier = CommandVerifier([load_public_key(served["public"])])
    cmds = wait_until(lambda: _commands(served["bootstrap"], served["topic"]), timeout=20, message="commands")
    assert [(c.scope, c.action.value, c.issued_by) for c in cmds] == [
        ("agent:refund-assistant", "disable_autonomy", actor),
        ("agent:refund-assistant", "resume", actor),
    ]
    for c in cmds:
        verifier.verify(c)
    proc = served["proc"]
    proc.terminate()
    proc.wait(timeout=20)
    out = _helper("audit", served["url"])
    assert [(a["actor"], a["scope"], a["action"], a["command_id"]) for a in out["audit"]] == [
        (actor, c.scope, c.action.value, c.command_id) for c in cmds
    ]
    return out


def test_dashboard_in_chromium(served: dict) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = served["base"]
    timings: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 2200})
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)

        def settle() -> None:
            """The script run is over and every lazily loaded element (charts, tables) is drawn."""
            page.wait_for_function(SETTLED, timeout=60_000)

        def shot(name: str) -> None:
            settle()
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, timeout=90_000)

        def visit(path: str, name: str, ready: str) -> None:
            t0 = time.perf_counter()
            page.goto(base + path)
            expect(page.get_by_text(ready, exact=False).first).to_be_visible()
            # no sign-in configured: development mode, with its banner on every page
            expect(page.get_by_text("Development mode: no sign-in.")).to_be_visible()
            settle()
            timings[name] = time.perf_counter() - t0
            assert page.locator('[data-testid="stException"]').count() == 0
            shot(name)

        def metric(label: str) -> str:
            m = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(label, exact=True)).first
            return m.locator('[data-testid="stMetricValue"]').inner_text().strip()

        # Overview
        visit("/", "overview", "Model calls by version and model")
        assert metric("Runs") == f"{served['runs']:,}"
        assert metric("Total spend") == f"${served['spend']:,.2f}"
        assert metric("Success rate") == f"{served['success_rate'] * 100:.1f}%"

        # Runs explorer: one run's trace explains the block
        visit(f"/runs?run_id={served['blocked_run']}", "runs", "Why did the agent do that?")
        expect(page.get_by_text("blocked: kill switch: freeze_tool", exact=False)).to_be_visible()
        assert metric("Blocked calls") == "1"
        # hostile search: matches nothing, breaks nothing
        box = page.get_by_label("Search run id, trace id or principal")
        box.fill("' OR 1=1 --")
        box.press("Enter")
        expect(page.get_by_text("No run matches these filters.")).to_be_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
        assert "Traceback" not in page.content()

        # Alerts
        visit("/alerts", "alerts", "Unacknowledged firing")
        assert metric("Incidents") == "3" and metric("Firing") == "2"

        # Kill switch: disable refund-assistant's autonomy (page, button, confirm), then reset it
        visit("/killswitch", "killswitch", "Audit history")
        expect(page.get_by_role("button", name=f"Reset {served['active_scope']}")).to_be_visible()
        page.get_by_role("button", name="Disable refund-assistant").click()
        settle()
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("disable_autonomy on agent:refund-assistant issued", exact=False)).to_be_visible()
        expect(page.get_by_role("button", name="Reset agent:refund-assistant")).to_be_visible()
        shot("killswitch_tripped")
        page.get_by_role("button", name="Reset agent:refund-assistant").click()
        settle()
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("resume on agent:refund-assistant issued", exact=False)).to_be_visible()
        expect(page.get_by_role("button", name="Reset agent:refund-assistant")).to_have_count(0)

        # Cost
        visit("/cost", "cost", "Cost by token kind")
        assert metric("Budget breaches") == "1"
        assert metric("Total spend") == f"${served['spend']:,.2f}"

        # SQL console: run an example, then a write that the read-only engine refuses
        visit("/sql", "sql", "Row limit")
        page.get_by_role("button", name="Top 20 expensive runs").click()
        expect(page.get_by_role("textbox", name="SQL")).to_have_value(re.compile(r"^SELECT run_id"))
        settle()
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page.get_by_text("20 rows")).to_be_visible()
        expect(page.get_by_role("button", name="Download CSV")).to_be_visible()
        shot("sql_result")
        browser.close()

    out = check_trip_and_reset(served, OPERATOR)
    # every action is audited with the dev-mode identity (the operator, admin, not authenticated)
    assert [(a["actor"], a["role"], a["authenticated"], a["action"], a["decision"]) for a in out["actions"]] == [
        (OPERATOR, "admin", False, "killswitch.trip", "allowed"),
        (OPERATOR, "admin", False, "killswitch.reset", "allowed"),
        (OPERATOR, "admin", False, "sql.query", "allowed"),
    ]
    log.info("page render seconds %s", json.dumps({k: round(v, 3) for k, v in timings.items()}))
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2))
