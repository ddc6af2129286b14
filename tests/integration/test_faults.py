"""The whole-pipeline fault suite, short variant (issue 20): a private broker, the SDK fleet, two workers,
the sink into chdb and the notifier as subprocesses; hostile events, SIGKILLs of each worker and of the
sink, ClickHouse insert failures, a webhook outage and a broker stop; every check of the suite must pass
(benchmarks/bench_faults.py). ~2 minutes; it runs with the rest of ``pytest``.

``windows_eq_raw`` (issue 20's "windows exact under faults") was an expected failure until the stages
skipped replayed inputs (their applied positions, ``processors/_state_cache.py``): every check is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_faults import SHORT, suite

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_short_fault_suite_loses_nothing_doubles_nothing_and_dead_letters_every_hostile_event(tmp_path: Path) -> None:
    out = suite(short=True, workdir=tmp_path)
    print(out.table())
    assert [r.fault for r in out.rows] == [f for _, f in SHORT.schedule()]
    not_recovered = [r.fault for r in out.rows if r.recovered_after_s is None]
    assert not_recovered == [], out.table()
    assert set(out.checks) == {
        "processes_alive",
        "sdk_nothing_dropped",
        "emitted_eq_stored",
        "run_summaries_eq_raw",
        "cost_to_the_cent",
        "windows_eq_raw",
        "hostile_in_dlq",
        "alerts_once_per_incident",
        "insert_failures_exercised",
        "webhook_outage_exercised",
    }
    failed = {name: detail for name, (ok, detail) in out.checks.items() if not ok}
    assert failed == {}, out.table()
