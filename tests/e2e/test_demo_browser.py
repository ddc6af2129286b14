"""Issue 19: a fresh ``tripwire demo`` (dashboard on) seen in Chromium after 60 s: the Overview's
charts are sized to the data (more than 5 points in every count series, not one dot in a 5-minute bucket) and the
story panel shows at least one full incident line (injected → alert → kill switch → outcome)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_dash_browser import CHROMIUM, CHROMIUM_ARGS, SETTLED, _free_port, _healthy
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "demo"
FRESH_S = 60.0
CHARTS = """() => {
  const typed = {f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array,
                 u2: Uint16Array, i1: Int8Array, u1: Uint8Array, i8: BigInt64Array, u8: BigUint64Array};
  const values = v => {  // a plain or typed array, or plotly's base64 form {dtype, bdata}
    if (!v) return [];
    if (Array.isArray(v) || ArrayBuffer.isView(v)) return Array.from(v);
    if (typeof v.bdata === 'string') {
      const bin = atob(v.bdata), bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return Array.from(new typed[v.dtype](bytes.buffer)).map(Number);
    }
    throw new Error('unknown array form ' + JSON.stringify(v).slice(0, 80));
  };
  return Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
    title: (gd.layout && gd.layout.title && gd.layout.title.text) || '',
    points: (gd.data || []).map(t => (t.x || []).length),
    xs: new Set((gd.data || []).flatMap(t => Array.from(t.x || []).map(String))).size,
    series: (gd.data || []).map(t => {
        const y = values(t.y).map(v => (v === null || v === undefined) ? NaN : Number(v));
        return {name: String(t.name ?? ''), points: y.filter(v => !Number.isNaN(v)).length,
                nonzero: y.filter(v => v > 0).length};
    }),
  }));
}"""


@pytest.mark.timeout(300)
def test_fresh_demo_overview_has_lines_and_the_story(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    port = _free_port()
    log = tmp_path / "demo.log"
    proc = subprocess.Popen([sys.executable, "-m", "tripwire.cli", "demo", "--dir", str(tmp_path / "demo"),
                             "--port", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        wait_until(lambda: _healthy(base) or proc.poll() is not None, timeout=90, message="demo dashboard health")
        assert proc.poll() is None, log.read_text()[-4000:]
        try:  # the scenario: a user opens the dashboard a minute into a fresh demo
            proc.wait(timeout=max(0.0, FRESH_S - (time.monotonic() - started)))
            pytest.fail("the demo ended on its own:\n" + log.read_text()[-4000:])
        except subprocess.TimeoutExpired:
            pass
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 2600})
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)
            page.goto(base + "/")
            expect(page.get_by_text("What happened (demo)")).to_be_visible()
            expect(page.get_by_text("Model calls by version and model")).to_be_visible()
            page.wait_for_function(SETTLED, timeout=90_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            page.screenshot(path=str(ARTIFACTS / "fresh_overview.png"), full_page=True, timeout=90_000)
            charts = page.evaluate(CHARTS)
            story = [t.strip() for t in page.locator('[data-testid="stMarkdownContainer"] li').all_inner_texts()]
            browser.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, log.read_text()[-4000:]
    titles = sorted(c["title"] for c in charts)
    assert len(charts) == 4, titles  # runs, p95, spend, calls
    assert all("10 seconds" in t for t in titles), titles  # a minute of data: 10-second buckets
    calls = next(c for c in charts if "Model calls per" in c["title"])
    had_calls = {s["name"]: s["nonzero"] for s in calls["series"]}
    for c in charts:
        assert c["xs"] > 5, c  # more than 5 time points in every chart
        if "p95" in c["title"]:
            # a latency point in every bucket where the series had calls (a bucket without calls has none):
            # a version that ran all minute has a full line, one the kill switch stopped ends where it stopped
            assert c["series"] and all(s["points"] == had_calls[s["name"]] for s in c["series"]), (c, had_calls)
            assert max(s["points"] for s in c["series"]) > 5, c
        else:  # counts and spend: every series has a value (0 included) in every bucket of the chart
            assert c["series"] and min(s["points"] for s in c["series"]) > 5, c
            assert all(s["points"] == c["xs"] for s in c["series"]), c
    full = [s for s in story if "injected on" in s and "→ alert " in s and "kill switch" in s
            and ("calls blocked" in s or "calls need a human approval" in s)]
    assert full, story
