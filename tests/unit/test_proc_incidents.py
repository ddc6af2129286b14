"""Incident dedup and cooldown: one ongoing incident is one alert with updated counts."""

from __future__ import annotations

import pytest

from tripwire.processors import IncidentBook, Occurrence, default_policy, policy_from_dict

pytestmark = pytest.mark.unit

POLICY = default_policy().incidents
NOW = 1_800_000_000.0


def occ(i: int, observed: float = 1.0) -> Occurrence:
    return Occurrence(
        kind="runaway_loop",
        key="runaway_loop|run-1|search",
        severity="critical",
        scope="run:run-1",
        tenant="acme",
        observed=observed,
        threshold=5.0,
        summary="loop",
        event_id=f"00000000-0000-4000-8000-{i:012d}",
        trace_id="ab" * 16,
        run_id="run-1",
    )


def test_storm_becomes_one_incident_with_updated_counts_then_resolves() -> None:
    book = IncidentBook(POLICY)
    first = book.occur(occ(0), NOW)
    assert len(first) == 1 and first[0].count == 1 and first[0].status == "firing"
    storm = [a for i in range(1, 50) for a in book.occur(occ(i, observed=float(i)), NOW + i * 0.01)]
    assert storm == []  # within the update interval: folded, not re-alerted
    (upd,) = book.tick(NOW + POLICY.update_interval_s)
    assert upd.incident_id == first[0].incident_id and upd.count == 50 and upd.observed == 49.0
    assert len(upd.evidence_event_ids) == POLICY.max_evidence
    assert book.tick(NOW + POLICY.update_interval_s + 1) == []  # nothing new to report
    (res,) = book.tick(NOW + 0.49 + POLICY.cooldown_s)
    assert res.status == "resolved" and res.incident_id == first[0].incident_id and res.count == 50
    assert not book
    (again,) = book.occur(occ(100), NOW + 10_000)
    assert again.incident_id != first[0].incident_id and again.count == 1


def test_replayed_occurrence_is_not_counted_twice_and_ids_are_deterministic() -> None:
    a, b = IncidentBook(POLICY), IncidentBook(POLICY)
    (x,) = a.occur(occ(1), NOW)
    (y,) = b.occur(occ(1), NOW + 5)
    assert (x.incident_id, x.alert_id) == (y.incident_id, y.alert_id)
    assert a.occur(occ(1), NOW + 1) == [] and a.incidents["runaway_loop|run-1|search"].count == 1


def test_update_interval_zero_alerts_every_occurrence() -> None:
    book = IncidentBook(policy_from_dict({"incidents": {"update_interval_s": 0}}).incidents)
    counts = [a.count for i in range(3) for a in book.occur(occ(i), NOW)]
    assert counts == [1, 2, 3]


def test_state_round_trip() -> None:
    book = IncidentBook(POLICY)
    book.occur(occ(0), NOW)
    book.occur(occ(1), NOW + 1)
    again = IncidentBook.from_dict(POLICY, book.to_dict())
    (upd,) = again.tick(NOW + POLICY.update_interval_s)
    assert upd.count == 2
