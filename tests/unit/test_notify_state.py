"""The done-watermark (which offsets may be committed) and burst grouping, with hand-computed expectations."""

from __future__ import annotations

import pytest

from tests.notify_helpers import make_alert
from tripwire.notify import from_alert, routes_from_dict
from tripwire.notify.state import Grouper, OffsetTracker

pytestmark = pytest.mark.unit

T = "alerts"


def _tracked(tracker: OffsetTracker, offsets: list[int], waits: int = 1, partition: int = 0) -> list:
    refs = []
    for off in offsets:
        ref = tracker.track(T, partition, off, None, None)
        tracker.add(ref, waits)
        tracker.settle(ref)
        refs.append(ref)
    return refs


def test_watermark_advances_only_over_a_done_prefix() -> None:
    tr = OffsetTracker()
    a, b, c = _tracked(tr, [10, 11, 12])
    tr.done(c)
    assert tr.committable() == {} and tr.pending == 3  # 10 and 11 still wait
    tr.done(a)
    assert tr.committable() == {(T, 0): 11}
    assert tr.committable() == {}  # nothing moved since
    tr.done(b)
    assert tr.committable() == {(T, 0): 13} and tr.pending == 0


def test_offset_gaps_and_records_that_wait_for_nothing() -> None:
    tr = OffsetTracker()
    (a,) = _tracked(tr, [5])
    _tracked(tr, [9], waits=0)  # a compacted/transactional gap, and a record no route matched
    assert tr.committable() == {}
    tr.done(a)
    assert tr.committable() == {(T, 0): 10}


def test_a_record_on_two_routes_is_done_after_both() -> None:
    tr = OffsetTracker()
    (a,) = _tracked(tr, [0], waits=2)
    tr.done(a)
    assert tr.committable() == {}
    tr.done(a)
    assert tr.committable() == {(T, 0): 1}


def test_partitions_are_independent_and_forgotten_ones_ignore_late_outcomes() -> None:
    tr = OffsetTracker()
    (p0,) = _tracked(tr, [3], partition=0)
    (p1,) = _tracked(tr, [7], partition=1)
    tr.forget([(T, 1)])
    assert tr.pending == 1
    tr.done(p1)  # a delivery that finished after its partition was revoked
    tr.done(p0)
    assert tr.committable() == {(T, 0): 4}
    (again,) = _tracked(tr, [7], partition=1)  # reassigned later: a fresh watermark
    tr.done(again)
    assert tr.committable() == {(T, 1): 8}
    assert not tr.was_done(T, 1, 7)  # it was not done when partition 1 was forgotten


def test_what_was_done_before_a_revocation_is_recognised_when_replayed() -> None:
    tr = OffsetTracker()
    a, b, _waits, d = _tracked(tr, [10, 11, 12, 13])
    tr.done(a)
    tr.done(b)
    tr.done(d)  # done, but behind 12 which still waits
    assert tr.committable() == {(T, 0): 12}
    tr.forget([(T, 0)])  # its commit never reached the broker: the partition comes back from 10
    assert [tr.was_done(T, 0, o) for o in (9, 10, 11, 12, 13, 14)] == [True, True, True, False, True, False]
    assert not tr.was_done(T, 1, 10)  # another partition
    replay = [tr.track(T, 0, o, None, None) for o in (10, 11)]
    for ref in replay:  # done here already: settled without an outcome
        tr.settle(ref)
    assert tr.committable() == {(T, 0): 12} and tr.pending == 0
    (again,) = _tracked(tr, [12])
    tr.done(again)
    done13 = tr.track(T, 0, 13, None, None)
    tr.settle(done13)
    assert tr.committable() == {(T, 0): 14}
    tr.forget([(T, 0)])  # the remembered watermark only moves forward
    assert [tr.was_done(T, 0, o) for o in (12, 13, 14)] == [True, True, False]


ROUTE = {"name": "r", "channel": "webhook", "url": "http://127.0.0.1:9/h"}


def _grouper(**route: object) -> tuple[Grouper, object]:
    r = routes_from_dict({"routes": [{**ROUTE, **route}]})[0]
    return Grouper([r], now=0.0), r


def test_group_wait_folds_a_burst_into_one_batch() -> None:
    g, r = _grouper(group_wait_s=2.0)
    tr = OffsetTracker()
    refs = _tracked(tr, [0, 1, 2])
    alerts = [make_alert("inc", count=i + 1) for i in range(3)]
    for t, (a, ref) in enumerate(zip(alerts, refs, strict=True)):
        g.add(r, from_alert(a), ref, now=float(t) * 0.5)
    assert g.due(1.9) == [] and g.next_due_in(1.9) == pytest.approx(0.1)
    (batch,) = g.due(2.0)
    assert (batch.notification.grouped, batch.notification.record_id, batch.refs) == (3, alerts[-1].alert_id, refs)
    assert g.waiting == 0 and g.next_due_in(2.0) is None


def test_one_incident_is_never_in_flight_twice_and_group_interval_holds_updates() -> None:
    g, r = _grouper(group_wait_s=0.0, group_interval_s=10.0)
    tr = OffsetTracker()
    r0, r1, r2, r3 = _tracked(tr, [0, 1, 2, 3])
    g.add(r, from_alert(make_alert("inc")), r0, now=0.0)
    (first,) = g.due(0.0)
    g.add(r, from_alert(make_alert("inc")), r1, now=0.1)
    assert g.due(0.1) == []  # the first delivery is still in flight
    g.finished(first, now=0.5, delivered=True)
    g.add(r, from_alert(make_alert("inc")), r2, now=1.0)
    assert g.due(10.4) == []  # firing updates wait for the group interval after the last delivery
    (update,) = g.due(10.5)
    assert (update.notification.grouped, update.refs) == (2, [r1, r2])
    g.finished(update, now=10.6, delivered=True)
    g.add(r, from_alert(make_alert("inc", status="resolved")), r3, now=11.0)
    (resolve,) = g.due(11.0)  # a resolve is not held by the interval
    assert resolve.notification.action == "resolve"


def test_rate_limit_holds_batches_and_they_keep_folding() -> None:
    g, r = _grouper(rate_limit={"per_minute": 60, "burst": 1})
    tr = OffsetTracker()
    refs = _tracked(tr, [0, 1, 2])
    g.add(r, from_alert(make_alert("a")), refs[0], now=0.0)
    g.add(r, from_alert(make_alert("b")), refs[1], now=0.0)
    assert [b.notification.dedup_key for b in g.due(0.0)] == ["a"]
    g.add(r, from_alert(make_alert("b")), refs[2], now=0.5)
    assert g.due(0.5) == [] and g.next_due_in(0.5) == pytest.approx(0.5)
    (b,) = g.due(1.0)
    assert (b.notification.dedup_key, b.notification.grouped) == ("b", 2)


def test_due_respects_the_limit_oldest_first_and_drop_forgets_revoked_records() -> None:
    g, r = _grouper()
    tr = OffsetTracker()
    refs = _tracked(tr, [0, 1, 2])
    for i, ref in enumerate(refs):
        g.add(r, from_alert(make_alert(f"inc-{i}")), ref, now=float(i))
    assert [b.notification.dedup_key for b in g.due(5.0, limit=2)] == ["inc-0", "inc-1"]
    assert g.drop({(T, 0)}) == 1 and g.waiting == 0


def test_gc_forgets_idle_incidents_after_their_group_interval() -> None:
    g, r = _grouper(group_interval_s=5.0)
    tr = OffsetTracker()
    r0, r1 = _tracked(tr, [0, 1])
    g.add(r, from_alert(make_alert("inc")), r0, now=0.0)
    (b,) = g.due(0.0)
    g.finished(b, now=0.0, delivered=True)
    g.gc(4.9)
    assert len(g._slots) == 1  # still inside the interval: a new firing record would be held
    g.gc(5.0)
    assert len(g._slots) == 0
    g.add(r, from_alert(make_alert("inc")), r1, now=6.0)
    assert [x.notification.grouped for x in g.due(6.0)] == [1]
