"""One test per faust fix (processors/_faust_fixes.py): each drives the patched method (built from
faust's own, unpatched one) with a minimal stand-in of the collaborators it calls, and says what
goes wrong without the fix. Each was checked to fail with its fix disabled (``build`` returning
faust's method unchanged)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from tripwire.processors import _faust_fixes as fx

pytestmark = pytest.mark.unit

_TXN_MANAGER = "faust.transport.consumer:TransactionManager"
_RECOVERY = "faust.tables.recovery:Recovery"


def _fixed(name: str, owner: str, attribute: str) -> Any:
    """The fix called ``name``, built on faust's own ``owner.attribute`` (not on other fixes)."""
    fix = next(f for f in fx.FIXES if f.name == name and f.owner == owner and f.attribute == attribute)
    return fix.build(fx.original(owner, attribute))


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


# -- fix 1 ---------------------------------------------------------------------------------------------
class _AioConsumerBeforeFetch:
    """aiokafka's consumer for a partition that just moved here: it has not fetched it yet, so it
    does not know the last stable offset; the broker does."""

    def last_stable_offset(self, tp: TP) -> int | None:
        return None

    async def end_offsets(self, partitions: list[TP]) -> dict[TP, int]:
        return {tp: 7 for tp in partitions}


class _ConsumerThread:
    """The members of faust's AIOKafkaConsumerThread that ``_highwaters`` uses (exactly_once)."""

    def __init__(self) -> None:
        self.consumer = SimpleNamespace(in_transaction=True)
        self._aio = _AioConsumerBeforeFetch()

    def _ensure_consumer(self) -> _AioConsumerBeforeFetch:
        return self._aio


def test_recovery_highwaters_asks_the_broker() -> None:
    # Without the fix faust returns None (taken as -1: "empty changelog") and recovery skips the
    # changelog or stops the worker with ConsistencyError.
    tp = TP("app-state-runs-changelog", 1)
    highwaters = _fixed("recovery_highwaters", "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread", "_highwaters")
    assert _run(highwaters(_ConsumerThread(), [tp])) == {tp: 7}


# -- fixes 2, 3, 6: TransactionManager.on_rebalance -----------------------------------------------------
class _Txn:
    """An aiokafka transactional producer: its transaction manager says whether a transaction is open."""

    def __init__(self, name: str, log: list[str], in_transaction: bool = False) -> None:
        self.name, self.log = name, log
        self._txn_manager = SimpleNamespace(is_in_transaction=lambda: in_transaction)

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        self.log.append(f"offsets {self.name}")

    async def commit_transaction(self) -> None:
        self.log.append(f"commit {self.name}")

    async def begin_transaction(self) -> None:
        self.log.append(f"begin {self.name}")


class _TransactionManager:
    """The members of faust's TransactionManager that its ``on_rebalance`` and the fixes use:
    one transactional id per partition, producers started and stopped in the producer's table."""

    def __init__(self, producers: dict[str, _Txn], calls: list[str]) -> None:
        self.producer = SimpleNamespace(_transaction_producers=producers, _trn_locks=defaultdict(asyncio.Lock))
        self.app = SimpleNamespace()
        self.log = logging.getLogger("test.faust.tm")
        self.calls = calls

    def _tps_to_transactional_ids(self, tps: set[TP]) -> set[str]:
        return {f"app-g-{tp.partition}" for tp in tps}

    async def _stop_transactions(self, tids: list[str]) -> None:
        for tid in tids:
            self.calls.append(f"stop {tid}")
            del self.producer._transaction_producers[tid]

    async def _start_transactions(self, tids: list[str]) -> None:
        for tid in tids:  # faust's producer creates one only for an id it does not have
            if tid not in self.producer._transaction_producers:
                self.calls.append(f"start {tid}")
                self.producer._transaction_producers[tid] = _Txn(tid, self.calls)


def test_stop_stale_producers_stops_unassigned_ids() -> None:
    # Partition 1 went to another worker, which fenced this worker's producer app-g-1; faust's eager
    # rebalance reports nothing revoked. Without the fix the fenced producer stays in the table and
    # is reused when partition 1 comes back: the worker dies with ProducerFenced.
    calls: list[str] = []
    fenced = _Txn("app-g-1", calls)
    tm = _TransactionManager({"app-g-0": _Txn("app-g-0", calls), "app-g-1": fenced}, calls)
    on_rebalance = _fixed("stop_stale_producers", _TXN_MANAGER, "on_rebalance")
    _run(on_rebalance(tm, {TP("events", 0)}, set(), set()))
    assert calls == ["stop app-g-1"]
    _run(on_rebalance(tm, {TP("events", 0), TP("events", 1)}, set(), {TP("events", 1)}))
    assert calls == ["stop app-g-1", "start app-g-1"]
    assert tm.producer._transaction_producers["app-g-1"] is not fenced


def test_close_open_transactions_commits_kept_partitions() -> None:
    # Partition 0 is kept through the rebalance with a transaction open. Without the fix it stays
    # open, and recovery waits for the changelog's last stable offset that it holds back: the
    # worker stops committing partition 0. A kept producer with no open transaction is left alone.
    calls: list[str] = []
    producers = {"app-g-0": _Txn("app-g-0", calls, in_transaction=True), "app-g-2": _Txn("app-g-2", calls)}
    tm = _TransactionManager(producers, calls)
    on_rebalance = _fixed("close_open_transactions", _TXN_MANAGER, "on_rebalance")
    _run(on_rebalance(tm, {TP("events", 0), TP("events", 2)}, set(), set()))
    assert calls == ["commit app-g-0", "begin app-g-0"]


def test_rebalance_under_flush_lock_waits_for_flush() -> None:
    # Without the fix faust would stop/start transactional producers while a flush is sending
    # through them.
    async def scenario() -> list[str]:
        calls: list[str] = []
        tm = _TransactionManager({}, calls)
        fx.install_flusher(tm.app, runtime=None)
        on_rebalance = _fixed("rebalance_under_flush_lock", _TXN_MANAGER, "on_rebalance")
        lock = tm.app._tripwire_flusher.lock
        await lock.acquire()  # a flush in progress
        task = asyncio.ensure_future(on_rebalance(tm, {TP("events", 3)}, set(), {TP("events", 3)}))
        for _ in range(20):
            await asyncio.sleep(0)  # let the task run as far as it can (not a wait for time)
        calls.append("flush done")
        lock.release()
        await task
        return calls

    assert _run(scenario()) == ["flush done", "start app-g-3"]


def test_apply_orders_the_rebalance_fixes() -> None:
    # The three on_rebalance fixes compose: the flush lock is held around all of it, stale
    # producers are stopped before open transactions are closed, and faust's own handling runs last.
    fx.apply()
    fx.apply()  # idempotent: nothing is wrapped twice
    tm_cls = fx.resolve(_TXN_MANAGER)
    calls: list[str] = []

    class _Locked(_TransactionManager):
        async def _stop_transactions(self, tids: list[str]) -> None:
            self.calls.append(f"locked={self.app._tripwire_flusher.lock.locked()}")
            await super()._stop_transactions(tids)

    producers = {"app-g-0": _Txn("app-g-0", calls, in_transaction=True), "app-g-1": _Txn("app-g-1", calls)}
    tm = _Locked(producers, calls)
    fx.install_flusher(tm.app, runtime=None)
    _run(tm_cls.on_rebalance(tm, {TP("events", 0), TP("events", 5)}, set(), set()))
    assert calls == ["locked=True", "stop app-g-1", "commit app-g-0", "begin app-g-0", "start app-g-5"]


# -- fix 4 ------------------------------------------------------------------------------------------------
class _StreamConsumer:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def assignment(self) -> set[TP]:
        return {TP("events", 0), TP("app-state-runs-changelog", 0)}

    def resume_partitions(self, tps: set[TP]) -> None:
        self.log.append(f"resume_partitions {sorted(tp.topic for tp in tps)}")

    async def perform_seek(self) -> None:
        self.log.append("seek")

    def resume_flow(self) -> None:
        self.log.append("resume_flow")


class _Recovery:
    """The members of faust's Recovery its end-of-rebalance methods use. ``flow_control.resume``
    clears every stream's queue, which is what loses events fetched before the seek."""

    def __init__(self, log: list[str]) -> None:
        async def send() -> None:
            return None

        async def maybe_start() -> None:
            return None

        consumer = _StreamConsumer(log)
        self.app = SimpleNamespace(
            consumer=consumer,
            consumer_generation_id=4,
            on_rebalance_complete=SimpleNamespace(send=send),
            flow_control=SimpleNamespace(resume=lambda: log.append("clear_queues")),
            _fetcher=SimpleNamespace(maybe_start=maybe_start),
            on_rebalance_end=lambda: None,
            conf=SimpleNamespace(broker_request_timeout=5.0),
            assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        )
        self.log = SimpleNamespace(dev=lambda *a: None, info=lambda *a: None, warning=lambda *a: None)
        self.completed = asyncio.Event()
        self.tables: Any = SimpleNamespace(on_actives_ready=lambda: None, on_standbys_ready=lambda: None, values=list)
        self.actives_for_table: dict[Any, Any] = {}
        self.standbys_for_table: dict[Any, Any] = {}

    def _is_changelog_tp(self, tp: TP) -> bool:
        return tp.topic.endswith("-changelog")

    async def _wait(self, coro: Any, timeout: float) -> None:
        await coro

    def _set_recovery_ended(self) -> None:
        return None


@pytest.mark.parametrize("attribute", ["_resume_streams", "on_recovery_completed"])
def test_resume_streams_last_resumes_after_seek_and_flow(attribute: str) -> None:
    # Without the fix faust resumes the stream partitions before the seek and the queue-clearing
    # flow resume: events fetched in between are cleared and then skipped as already read (lost).
    log: list[str] = []
    rec = _Recovery(log)
    method = _fixed("resume_streams_last", _RECOVERY, attribute)
    _run(method(rec, 4))
    assert log == ["seek", "clear_queues", "resume_flow", "resume_partitions ['events']"]
    assert "resume_partitions" not in vars(rec.app.consumer)  # the method is back


def test_resume_streams_last_leaves_them_paused_on_a_new_rebalance() -> None:
    log: list[str] = []
    rec = _Recovery(log)
    method = _fixed("resume_streams_last", _RECOVERY, "_resume_streams")
    _run(method(rec, 3))  # the generation moved on: faust returns early, the next round resumes
    assert log == []


# -- fix 5 ------------------------------------------------------------------------------------------------
class _Runtime:
    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log, self.fail = log, fail

    async def flush(self) -> None:
        if self.fail:
            raise RuntimeError("broker refused")
        self.log.append("flush")

    def committed(self, tid: str | None) -> None:
        self.log.append(f"committed {tid}")


class _Consumer:
    def __init__(self, runtime: _Runtime, in_transaction: bool = True) -> None:
        self.in_transaction = in_transaction
        self.app = SimpleNamespace()
        fx.install_flusher(self.app, runtime)
        self.crashed: list[BaseException] = []

    async def crash(self, reason: BaseException) -> None:
        self.crashed.append(reason)


def _faust_commit(log: list[str]) -> Any:
    """faust's ``Consumer._commit_offsets`` as far as the hook sees it: it commits the offsets."""

    async def _commit_offsets(self: _Consumer, offsets: Any, start_new_transaction: bool = True) -> bool:
        log.append(f"commit locked={self.app._tripwire_flusher.lock.locked()}")
        return True

    return _commit_offsets


def _commit_hook(log: list[str]) -> Any:
    fix = next(f for f in fx.FIXES if f.name == "flush_before_commit")
    return fix.build(_faust_commit(log))


def test_flush_before_commit_sends_pending_first() -> None:
    # Without the fix the pending records are never sent with the offsets that caused them.
    log: list[str] = []
    consumer = _Consumer(_Runtime(log))
    assert _run(_commit_hook(log)(consumer, {TP("events", 0): 10})) is True
    assert log == ["flush", "commit locked=True"]  # exactly once: fix 7 reports each transaction


def test_flush_before_commit_reports_an_at_least_once_commit() -> None:
    # The states sent before an at-least-once commit are written into the local store after it.
    log: list[str] = []
    consumer = _Consumer(_Runtime(log), in_transaction=False)
    assert _run(_commit_hook(log)(consumer, {TP("events", 0): 10})) is True
    assert log == ["flush", "commit locked=True", "committed None"]


def test_flush_before_commit_crashes_on_failure() -> None:
    # A failed flush must not commit the offsets of records that were not sent.
    log: list[str] = []
    consumer = _Consumer(_Runtime(log, fail=True))
    assert _run(_commit_hook(log)(consumer, {TP("events", 0): 10})) is False
    assert log == [] and [str(e) for e in consumer.crashed] == ["broker refused"]


# -- fix 7 ------------------------------------------------------------------------------------------------
class _SlowTxn(_Txn):
    """A commit takes a round trip to the transaction coordinator (a few loop turns here)."""

    def __init__(self, name: str, log: list[str], flight: dict[str, int]) -> None:
        super().__init__(name, log)
        self.flight = flight

    async def commit_transaction(self) -> None:
        self.flight["now"] += 1
        self.flight["max"] = max(self.flight["max"], self.flight["now"])
        for _ in range(3):
            await asyncio.sleep(0)
        self.flight["now"] -= 1
        self.log.append(f"commit {self.name}")


def test_concurrent_transaction_commits_overlap() -> None:
    # Without the fix faust commits one partition after the other (at most one in flight).
    log: list[str] = []
    flight = {"now": 0, "max": 0}
    app = SimpleNamespace()
    fx.install_flusher(app, _Runtime(log))
    producer = SimpleNamespace(
        app=app,
        _trn_locks=defaultdict(asyncio.Lock),
        _transaction_producers={f"app-g-{p}": _SlowTxn(f"app-g-{p}", log, flight) for p in range(3)},
    )
    producer_cls = "faust.transport.drivers.aiokafka:Producer"
    commit = _fixed("concurrent_transaction_commits", producer_cls, "commit_transactions")
    offsets = {f"app-g-{p}": {TP("events", p): 5} for p in range(3)} | {"app-g-9": {TP("events", 9): 1}}
    _run(commit(producer, offsets, "app"))
    assert flight["max"] == 3
    for p in range(3):
        mine = [c for c in log if c.endswith(f"app-g-{p}")]
        # each transaction: offsets, commit, its states written into the store, begin, in that order
        assert mine == [f"offsets app-g-{p}", f"commit app-g-{p}", f"committed app-g-{p}", f"begin app-g-{p}"]
    assert len(log) == 12  # nothing for the unknown id app-g-9


# -- fix 8 ---------------------------------------------------------------------------------------------
class _Fetching:
    """The members of faust's Consumer that ``wait_first`` uses: mode's events and the loop."""

    def __init__(self) -> None:
        from mode.utils.locks import Event

        self.suspend_flow, self._stopped, self._crashed = Event(), Event(), Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()


_CONSUMER = "faust.transport.consumer:Consumer"


def test_deliver_without_tasks_runs_a_callback_that_does_not_suspend() -> None:
    # Without the fix faust runs the callback in a task of its own (and three more for the events).
    wait_first = _fixed("deliver_without_tasks", _CONSUMER, "wait_first")

    async def main() -> tuple[Any, Any, Any, int]:
        consumer = _Fetching()
        ran_in: list[Any] = []

        async def callback() -> str:
            ran_in.append(asyncio.current_task())
            return "delivered"

        before = len(asyncio.all_tasks())
        res = await wait_first(consumer, callback(), consumer.suspend_flow.wait())
        return res, ran_in, asyncio.current_task(), len(asyncio.all_tasks()) - before

    res, ran_in, caller, new_tasks = _run(main())
    assert ran_in == [caller]
    assert (res.results, res.stopped) == (["delivered"], False)
    assert new_tasks == 0


def test_deliver_without_tasks_lets_suspend_flow_interrupt_a_callback_that_suspends() -> None:
    # A callback that waits (a full queue) still ends when the flow is suspended (a rebalance), and
    # one that resumes gives its result: faust's own wait_first drives the rest of it.
    wait_first = _fixed("deliver_without_tasks", _CONSUMER, "wait_first")

    async def main() -> tuple[list[str], Any, Any]:
        consumer = _Fetching()
        room, steps = asyncio.Event(), []

        async def blocked() -> None:
            steps.append("first step")
            try:
                await asyncio.Event().wait()  # never set
            except asyncio.CancelledError:
                steps.append("cancelled")
                raise

        async def resumes() -> str:
            steps.append("waits for room")
            await room.wait()
            return "put"

        asyncio.get_running_loop().call_soon(consumer.suspend_flow.set)
        interrupted = await wait_first(consumer, blocked(), consumer.suspend_flow.wait())
        consumer.suspend_flow.clear()
        asyncio.get_running_loop().call_soon(room.set)
        done = await wait_first(consumer, resumes(), consumer.suspend_flow.wait())
        await asyncio.sleep(0)  # let the cancellation of the interrupted callback run
        return steps, interrupted, done

    steps, interrupted, done = _run(main())
    assert interrupted.results == [True]  # only the suspend event finished (its wait() gives True)
    assert sorted(steps) == ["cancelled", "first step", "waits for room"]  # the cancel lands a round later
    assert (done.results, done.stopped) == (["put"], False)


def test_deliver_without_tasks_raises_what_the_callback_raises() -> None:
    wait_first = _fixed("deliver_without_tasks", _CONSUMER, "wait_first")

    async def main() -> None:
        consumer = _Fetching()

        async def bad() -> None:
            raise ValueError("undecodable")

        await wait_first(consumer, bad(), consumer.suspend_flow.wait())

    with pytest.raises(ValueError, match="undecodable"):
        _run(main())


# -- fix 10 --------------------------------------------------------------------------------------------
class _Draining:
    """The members of faust's Consumer that ``_drain_messages`` uses. ``batches``: what each getmany
    returns, (tp, message) pairs; the fetcher stops once they are all fetched."""

    consumer_stopped_errors = (ConnectionError,)

    def __init__(self, batches: list[list[tuple[TP, Any]]], direct: dict[str, Any] | None) -> None:
        from mode.utils.locks import Event

        self.batches = batches
        self.log: list[Any] = []
        self.suspend_flow, self._stopped, self._crashed = Event(), Event(), Event()
        self.fetcher = SimpleNamespace(_stopped=Event())
        self._read_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._commit_every = None
        self._n_acked = 0
        self.should_stop = False
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        topics = SimpleNamespace(acks_enabled_for=lambda topic: True)
        self.app = SimpleNamespace(topics=topics, _tripwire_direct=direct)
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=False))

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    async def getmany(self, timeout: float) -> Any:
        batch = self.batches.pop(0)
        if not self.batches:
            self.fetcher._stopped.set()
        for tp, msg in batch:
            yield tp, msg

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def callback(self, message: Any) -> None:
        self.log.append(("faust", message.topic, message.offset))

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        self.log.append(("gap", tp.partition, offset_from, offset_to))

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        first, other = coros
        other.close()
        return await first


def _msg(topic: str, partition: int, offset: int) -> tuple[TP, Any]:
    return TP(topic, partition), SimpleNamespace(topic=topic, partition=partition, offset=offset)


def test_deliver_in_batches_hands_runs_to_the_handler() -> None:
    # Without the fix every message goes to faust's callback (the conductor, a queue, a stream).
    drain = _fixed("deliver_in_batches", _CONSUMER, "_drain_messages")
    log: list[Any] = []
    direct = {
        "events": lambda msgs: log.append(("events", [(m.partition, m.offset) for m in msgs])),
        "by-agent": lambda msgs: log.append(("by-agent", [(m.partition, m.offset) for m in msgs])),
    }
    batches = [
        [_msg("events", 0, 0), _msg("events", 1, 0), _msg("events", 0, 1), _msg("ticks", 0, 7), _msg("events", 1, 1)],
        [_msg("by-agent", 2, 0), _msg("events", 1, 2)],
    ]
    consumer = _Draining(batches, direct)
    consumer.log = log  # one log: the order of the handler's runs and faust's deliveries
    _run(drain(consumer, consumer.fetcher))
    assert log == [
        ("events", [(0, 0), (1, 0), (0, 1)]),  # a run ends before a message of another topic ...
        ("faust", "ticks", 7),  # ... which takes faust's path
        ("events", [(1, 1)]),  # and at the end of each fetched batch
        ("by-agent", [(2, 0)]),
        ("events", [(1, 2)]),
    ]
    read = {TP("events", 0): 1, TP("events", 1): 2, TP("ticks", 0): 7, TP("by-agent", 2): 0}
    assert dict(consumer._read_offset) == read


def test_deliver_in_batches_keeps_faust_order_for_read_offsets_and_gaps() -> None:
    # A message below the read offset is not delivered again; a transactional gap (a commit marker)
    # is recorded once the run before it was handled, as faust does before delivering.
    drain = _fixed("deliver_in_batches", _CONSUMER, "_drain_messages")
    log: list[Any] = []
    direct = {"events": lambda msgs: log.append(("events", [m.offset for m in msgs]))}
    fetched = [_msg("events", 0, 4), _msg("events", 0, 5), _msg("events", 0, 6), _msg("events", 0, 9)]
    consumer = _Draining([fetched], direct)
    consumer.log = log
    consumer._read_offset[TP("events", 0)] = 5
    _run(drain(consumer, consumer.fetcher))
    assert log == [("events", [5, 6]), ("gap", 0, 7, 9), ("events", [9])]
    assert consumer._read_offset[TP("events", 0)] == 9


def test_deliver_in_batches_without_direct_topics_is_faust_own() -> None:
    ran: list[Any] = []

    async def faust_own(self: Any, fetcher: Any) -> None:
        ran.append(fetcher)

    drain = fx.deliver_in_batches(faust_own)
    consumer = _Draining([[_msg("events", 0, 0)]], None)
    _run(drain(consumer, consumer.fetcher))
    assert ran == [consumer.fetcher]
    assert consumer.log == []


# -- fix 9 ---------------------------------------------------------------------------------------------
class _RecoveryState:
    """The members of faust's Recovery that ``_build_highwaters`` uses."""

    def __init__(self, persisted: dict[TP, int | None]) -> None:
        from collections import Counter  # what faust's Recovery holds these maps in

        self.active_offsets: Any = Counter(persisted)
        self.active_highwaters: Any = Counter()
        self.standby_offsets: Any = Counter()
        self.app = SimpleNamespace()
        self.log = logging.getLogger("recovery")

    def _highwater_logtable(self, highwaters: Any, *, title: str) -> str:
        return ""


class _EndOffsets:
    """faust's consumer: the end offsets (one past the commit marker of the last transaction)."""

    def __init__(self, ends: dict[TP, int]) -> None:
        self.ends = ends

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}


def test_recovery_ends_at_last_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the fix each highwater is end - 1, the last transaction's commit marker, which recovery
    # never receives: it waits two 5-s queue timeouts at every start, with nothing to replay.
    a, b, c, d, e = (TP("cl", p) for p in range(5))
    asked: list[dict[TP, tuple[int | None, int]]] = []

    async def last_records(make_consumer: Any, spans: dict[TP, tuple[int | None, int]]) -> dict[TP, int | None]:
        asked.append(dict(spans))
        # a: nothing past the store (first - 1); b: a record to replay at 30; c: unknown
        return {a: spans[a][0] - 1, b: 30, c: None}  # type: ignore[operator]

    monkeypatch.setattr("tripwire.processors._changelog_end.last_records", last_records)
    build = _fixed("recovery_ends_at_last_record", _RECOVERY, "_build_highwaters")
    rec = _RecoveryState({a: 40, b: 28, c: 10, d: 99, e: None})
    ends = {a: 42, b: 32, c: 21, d: 100, e: 60}
    _run(build(rec, _EndOffsets(ends), {a, b, c, d, e}, rec.active_highwaters, "active"))
    # d's store holds everything up to faust's highwater (99) and e has no store (a rebuild): not asked
    assert asked == [{a: (41, 42), b: (29, 32), c: (11, 21)}]
    # a: nothing to replay; b (a replay) and c (unknown) keep faust's end - 1 and its wait
    assert dict(rec.active_highwaters) == {a: 40, b: 31, c: 20, d: 99, e: 59}


def test_recovery_ends_at_last_record_asks_nothing_when_up_to_date(monkeypatch: pytest.MonkeyPatch) -> None:
    async def last_records(make_consumer: Any, spans: Any) -> Any:
        raise AssertionError("asked the broker for a changelog recovery does not read")

    monkeypatch.setattr("tripwire.processors._changelog_end.last_records", last_records)
    build = _fixed("recovery_ends_at_last_record", _RECOVERY, "_build_highwaters")
    a, b = TP("cl", 0), TP("cl", 1)
    rec = _RecoveryState({a: 9, b: None})
    _run(build(rec, _EndOffsets({a: 10, b: 0}), {a, b}, rec.active_highwaters, "active"))
    assert dict(rec.active_highwaters) == {a: 9, b: -1}  # faust's own: up to date; an empty log
