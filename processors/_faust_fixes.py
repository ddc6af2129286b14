"""Every patch the processors make to faust-streaming 0.15.3 / aiokafka 0.14.0, in one ordered list.

:func:`apply` (called by ``create_app``) first runs the start-up self-check
(:func:`tripwire.processors._faust_check.check_runtime`: the pinned versions, and every symbol
patched here or used privately anywhere in the processors, with its parameter names), then applies
:data:`FIXES` in their order, once per process. Each fix is a named function that takes the
method it replaces and returns the replacement; its docstring says which bug it fixes and which
test fails without it (``tests/unit/test_proc_faust_fixes.py`` has one test per fix).

Order matters for ``TransactionManager.on_rebalance``, which three fixes wrap: each wraps the
result of the ones before it, so the last applied runs first. At a rebalance the call goes
``rebalance_under_flush_lock`` -> ``stop_stale_producers`` -> ``close_open_transactions`` ->
faust's own ``on_rebalance``.

Fixes 1-3 only matter when partitions move between live workers of one group (scale-out, or a
worker killed while another keeps running): ``tests/integration/test_deploy_topology.py`` kills
one of two workers and fails without them. Fix 4 matters at every start after a crash:
``tests/integration/test_proc_worker.py`` (SIGKILL mid-stream) lost events without it. Fixes 5-7
are the commit hook: a worker's pending records (``Runtime.flush``) are sent right before faust
commits offsets, under one lock, so records and offsets land in the same transaction; and once a
transaction (or, at least once, a commit) is done, ``Runtime.committed`` writes the states it
carried into the local RocksDB stores with their changelog offset (restart without a rebuild).
Fix 8 is a cost, not a bug: faust's fetcher hands each message to its stream through four tasks;
the fixed ``wait_first`` runs a callback that does not suspend at once (a tenth of a worker's CPU).
Fix 9 skips the ~10-s wait for a transaction marker at every start when the local stores already
hold every committed changelog record (``tests/integration/test_proc_changelog_end.py``).
Fix 10 is a cost too: the stages' input topics go from the fetcher to the runtime a fetched run of
messages at a time, not through the conductor, a channel queue and a stream per message (the larger
part of a draining worker's faust overhead; ``benchmarks/bench_processors.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

log = logging.getLogger(__name__)
_applied = False
_originals: dict[tuple[str, str], Any] = {}  # (owner, attribute) -> faust's own, before any fix


# -- 1. recovery highwaters ------------------------------------------------------------------------
def recovery_highwaters(original: Any) -> Any:
    """Fix 1 (``AIOKafkaConsumerThread._highwaters``): ask the broker for a changelog's end.

    Under ``exactly_once`` faust reads the end from ``consumer.last_stable_offset(tp)``, which
    aiokafka only knows after a fetch of that partition: a partition just moved here reports
    ``None``, taken as -1 ("empty"). Recovery then skips the changelog (state silently stale) or,
    with a standby copy, stops the worker with ``ConsistencyError: persisted offset ... is higher
    than the last offset (highwater) (n > -1)``. ``end_offsets`` with the consumer's
    ``read_committed`` isolation is the last stable offset.
    Test: ``test_recovery_highwaters_asks_the_broker``."""

    async def _highwaters(self: Any, partitions: list[Any]) -> Any:
        return await self._ensure_consumer().end_offsets(partitions)

    return _highwaters


# -- 2, 3. transactional producers at a rebalance --------------------------------------------------
def close_open_transactions(original: Any) -> Any:
    """Fix 3 (``TransactionManager.on_rebalance``): commit the open transactions of kept partitions.

    faust neither commits nor aborts the transaction of a partition a worker keeps through a
    rebalance (it logs ``IN_TRANSACTION -> IN_TRANSACTION``), and its recovery then waits for that
    changelog's last stable offset, which the open transaction holds back while processing is
    paused: the worker stops committing those partitions (``benchmarks/bench_scaleout.py`` counted
    runs that stall). Test: ``test_close_open_transactions_commits_kept_partitions``."""

    async def on_rebalance(self: Any, assigned: set[Any], revoked: set[Any], newly_assigned: set[Any]) -> None:
        producers = self.producer._transaction_producers
        for tid in sorted(t for t in self._tps_to_transactional_ids(assigned) if t in producers):
            await _close_open_transaction(self.producer, tid)
        await original(self, assigned, revoked, newly_assigned)

    return on_rebalance


async def _close_open_transaction(producer: Any, tid: str) -> None:
    """Commit what a kept partition's producer has sent since its last commit.

    Its state changes are already in the local table, so they must reach the changelog: aborting
    would lose them. The input offsets stay uncommitted; faust re-reads those records, and the
    runtime skips each one at or below its key's applied position, which is written in the same
    changelog record as the state (``StateCache.applied``)."""
    async with producer._trn_locks[tid]:
        txn = producer._transaction_producers.get(tid)
        if txn is None or txn._txn_manager is None or not txn._txn_manager.is_in_transaction():
            return
        await txn.commit_transaction()
        await txn.begin_transaction()
        log.info("committed the open transaction of a kept partition id=%s", tid)


def stop_stale_producers(original: Any) -> Any:
    """Fix 2 (``TransactionManager.on_rebalance``): stop the producers of partitions gone elsewhere.

    faust starts producers for the transactional ids of the assigned partitions but stops only
    those of ``revoked`` partitions, which its eager rebalance reports as empty. A producer whose
    partitions went to another worker (which fenced it) stays in faust's table; when the
    partitions come back faust reuses it and the worker dies with ``ProducerFenced``.
    Test: ``test_stop_stale_producers_stops_unassigned_ids``."""

    async def on_rebalance(self: Any, assigned: set[Any], revoked: set[Any], newly_assigned: set[Any]) -> None:
        keep = self._tps_to_transactional_ids(assigned)
        stale = sorted(tid for tid in list(self.producer._transaction_producers) if tid not in keep)
        if stale:
            log.info("stopping transactional producers of partitions no longer assigned ids=%s", stale)
            await self._stop_transactions(stale)
        await original(self, assigned, revoked, newly_assigned)

    return on_rebalance


# -- 4. resume the stream partitions last ----------------------------------------------------------
def resume_streams_last(original: Any) -> Any:
    """Fix 4 (``Recovery._resume_streams`` and ``Recovery.on_recovery_completed``).

    At the end of a rebalance faust resumes the stream partitions, *then* seeks them to the
    committed offsets, *then* resumes flow control, which clears every stream's queue. Events
    fetched in between reach a queue, move the read offset past them, and are cleared: the refetch
    after the seek skips them as already read, and later events are committed past them (lost).
    The wrapper defers resuming the stream partitions until faust has sought and resumed flow. On
    an error (another rebalance) they stay paused, as faust's next round wants.
    Test: ``test_resume_streams_last_resumes_after_seek_and_flow``."""

    async def wrapper(self: Any, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        deferred: list[Any] = []
        consumer.resume_partitions = deferred.extend  # shadows the method for this call only
        try:
            await original(self, generation_id)
        finally:
            del consumer.resume_partitions
        if deferred:
            consumer.resume_partitions(set(deferred))

    wrapper.__name__ = original.__name__
    return wrapper


# -- 5-7. the commit hook ----------------------------------------------------------------------------
class _Flusher:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.lock = asyncio.Lock()


def install_flusher(app: Any, runtime: Any) -> None:
    """Flush ``runtime``'s pending records before every offset commit of ``app`` (fixes 5-6)."""
    app._tripwire_flusher = _Flusher(runtime)


def flush_before_commit(original: Any) -> Any:
    """Fix 5 (``Consumer._commit_offsets``): send the runtime's pending records first, under the lock.

    The runtime queues everything a message causes (``Runtime.flush``); without this they would
    never be sent, or be sent outside the transaction of their offsets. A flush that fails (the
    broker refused a send, a fenced producer) stops the worker, as faust does for its own send
    errors: its uncommitted messages are read again by the next owner of their partitions.
    Test: ``test_flush_before_commit_sends_pending_first`` (and ``..._crashes_on_failure``)."""

    async def _commit_offsets(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        flusher = getattr(self.app, "_tripwire_flusher", None)
        if flusher is None:
            return await original(self, offsets, start_new_transaction)  # type: ignore[no-any-return]
        async with flusher.lock:
            try:
                await flusher.runtime.flush()
            except Exception as e:
                log.exception("sending the pending records failed; the worker stops, its uncommitted input is replayed")
                await self.crash(e)
                return False
            did_commit = await original(self, offsets, start_new_transaction)
            if did_commit and not self.in_transaction:  # at least once (transactions: fix 7)
                flusher.runtime.committed(None)
            return did_commit  # type: ignore[no-any-return]

    return _commit_offsets


def rebalance_under_flush_lock(original: Any) -> Any:
    """Fix 6 (``TransactionManager.on_rebalance``): no rebalance handling in the middle of a flush.

    faust stops and starts transactional producers at a rebalance; a flush sending through one of
    them at the same time would fail or write into a producer about to be fenced.
    Test: ``test_rebalance_under_flush_lock_waits_for_flush``."""

    async def on_rebalance(self: Any, assigned: Any, revoked: Any, newly_assigned: Any) -> None:
        flusher = getattr(self.app, "_tripwire_flusher", None)
        if flusher is None:
            return await original(self, assigned, revoked, newly_assigned)  # type: ignore[no-any-return]
        async with flusher.lock:
            return await original(self, assigned, revoked, newly_assigned)  # type: ignore[no-any-return]

    return on_rebalance


def concurrent_transaction_commits(original: Any) -> Any:
    """Fix 7 (aiokafka driver ``Producer.commit_transactions``): commit the partitions' transactions
    concurrently. faust commits them one after the other, each a few round trips to the
    transaction coordinator, so an output waited for every partition's commit in turn. Once one
    has committed, the runtime writes the states it carried into the local store
    (``Runtime.committed``). Test: ``test_concurrent_transaction_commits_overlap``."""

    async def commit_transactions(
        self: Any, tid_to_offset_map: Any, group_id: str, start_new_transaction: bool = True
    ) -> None:
        async def commit(tid: str, offsets: Any) -> None:
            async with self._trn_locks[tid]:
                txn = self._transaction_producers.get(tid)
                if txn is None:
                    log.warning("commit for an unknown transaction id=%s", tid)
                    return
                await txn.send_offsets_to_transaction(offsets, group_id)
                await txn.commit_transaction()
                flusher = getattr(self.app, "_tripwire_flusher", None)
                if flusher is not None:
                    flusher.runtime.committed(tid)
                if start_new_transaction:
                    await txn.begin_transaction()

        await asyncio.gather(*(commit(tid, offsets) for tid, offsets in tid_to_offset_map.items()))

    return commit_transactions


# -- 8. delivering a fetched message without four tasks --------------------------------------------
class _Resumed:
    """The rest of a coroutine that already ran its first step and suspended on ``yielded``: awaiting
    this drives it on exactly as if it had been awaited from the start (values and exceptions,
    cancellation included, are passed through)."""

    def __init__(self, coro: Any, yielded: Any) -> None:
        self.coro = coro
        self.yielded = yielded

    def __await__(self) -> Any:
        coro, to_yield = self.coro, self.yielded
        while True:
            try:
                sent = yield to_yield
            except BaseException as e:  # thrown in by the task (a cancellation): into the coroutine
                try:
                    to_yield = coro.throw(e)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    to_yield = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


def deliver_without_tasks(original: Any) -> Any:
    """Fix 8 (``Consumer.wait_first``): hand a fetched message to its stream without four tasks.

    faust's fetcher delivers every message with ``wait_first(callback(message),
    suspend_flow.wait())``, which creates four tasks (the callback, the suspend event, the
    consumer's stopped and crashed events), waits for the first and cancels the rest: several event
    loop rounds per message, about a tenth of a draining worker's CPU. The callback almost never
    suspends (it puts the message into a stream's queue that has room), so this runs its first
    step at once; only one that suspends (a full queue, flow control stopped for a rebalance) goes
    on under faust's ``wait_first``, which still lets ``suspend_flow`` interrupt it. With the flow
    already suspended (or the consumer stopped or crashed), faust's own path runs from the start.
    ``benchmarks/bench_processors.py`` measures it. Test:
    ``test_deliver_without_tasks_runs_a_callback_that_does_not_suspend`` (and ``..._suspends``)."""

    from mode.services import WaitResults

    async def wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:
        if (
            len(coros) == 2
            and timeout is None
            and asyncio.iscoroutine(coros[0])
            and not self.suspend_flow.is_set()
            and not self._stopped.is_set()
            and not self._crashed.is_set()
        ):
            coro, other = coros
            try:
                yielded = coro.send(None)
            except StopIteration as stop:
                if asyncio.iscoroutine(other):
                    other.close()  # never started: nothing to cancel
                return WaitResults([coro], [stop.value], False)
            except BaseException:
                if asyncio.iscoroutine(other):
                    other.close()
                raise
            return await original(self, _Resumed(coro, yielded), other, timeout=timeout)
        return await original(self, *coros, timeout=timeout)

    return wait_first


# -- 9. recovery ends at the last committed record ---------------------------------------------------
def recovery_ends_at_last_record(original: Any) -> Any:
    """Fix 9 (``Recovery._build_highwaters``): a changelog whose committed records the local store
    already holds is not waited for.

    faust waits for the record at ``end - 1``; under exactly-once that is the last transaction's
    commit marker, which a ``read_committed`` consumer never delivers, so every start (and every
    rebalance) spent two 5-s queue timeouts before faust checked the position and gave up waiting
    (``Aborted tx until highwater`` in its log): ~10 s of a kept-state restart of ~20 s. The wrapper
    asks the broker where the committed data ends (``_changelog_end.last_records``: a short-lived
    ``read_committed`` consumer reading back from the end, never below the offset the local store
    reflects). Where there is no committed record past the store, the highwater becomes the
    store's offset: nothing to replay, and when that holds for every partition faust skips the
    changelog read altogether. A partition with records to replay, or one it cannot tell, keeps
    faust's highwater and wait (ending a replay at its last record, while the fetcher still streams
    the changelog, left the worker's streams idle after large rebuilds in 3 of 3 tries here).
    Test: ``test_recovery_ends_at_last_record`` (and ``tests/integration/test_proc_changelog_end.py``)."""

    async def _build_highwaters(self: Any, consumer: Any, tps: Any, destination: Any, title: str) -> None:
        await original(self, consumer, tps, destination, title)
        offsets = self.active_offsets if destination is self.active_highwaters else self.standby_offsets
        spans = {}
        for tp in tps:
            hw, done = destination.get(tp), offsets.get(tp)
            if hw is not None and hw >= 0 and done is not None and done < hw:
                spans[tp] = (done + 1, hw + 1)
        if not spans:
            return
        from tripwire.processors._changelog_end import last_records

        found = await last_records(lambda: _end_reader(self.app), spans)
        moved = 0
        for tp, last in found.items():
            done = spans[tp][0] - 1
            if last == done:  # no committed record past the store (None: unknown; more: a replay)
                destination[tp] = done
                moved += 1
        log.info("changelogs the store holds up to their end title=%s partitions=%d of=%d", title, moved, len(spans))

    return _build_highwaters


def _end_reader(app: Any) -> Any:
    """An unstarted ``read_committed`` consumer, no group, with the app's broker and credentials."""
    import aiokafka
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth, server_list

    conf = app.conf
    transport = app.transport
    return aiokafka.AIOKafkaConsumer(
        bootstrap_servers=server_list(transport.url, transport.default_port),
        client_id=f"{conf.broker_client_id}-changelog-end",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
        **credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
    )


# -- 10. whole fetched runs of a direct topic to its handler ----------------------------------------
def install_direct(app: Any, handlers: dict[str, Callable[[list[Any]], None]]) -> None:
    """Deliver the messages of these topics straight from the fetcher (fix 10): ``handlers[topic]``
    gets a list of messages (in fetch order, each partition's in offset order), handles them and
    acks what it handled before it returns (synchronously: no commit can fall in between)."""
    app._tripwire_direct = dict(handlers)


def deliver_in_batches(original: Any) -> Any:
    """Fix 10 (``Consumer._drain_messages``): hand a direct topic's fetched messages to its handler
    a run at a time, not one by one through the conductor, a channel queue and a stream.

    faust's fetcher delivers each message with an awaited callback (the conductor decodes it into an
    event and puts it into every subscribed channel's queue), and the agent's stream takes it out
    again, tracks it, runs the sensors and acks it: about a fifth of a draining worker's CPU for the
    events topic. For the topics registered by :func:`install_direct` this loop (faust's own, line
    for line, otherwise) collects consecutive messages and calls the topic's handler with them
    before every await of the loop and at the end of each fetched batch. What faust's path checks
    stays: the read offset (no message twice), the gaps of a transactional topic, ``commit_every``;
    the handler itself skips everything while flow control is suspended or when a message is of an
    older consumer generation (a rebalance: the seek to the committed offsets reads it again), as
    faust's stream does. Other topics (the ticks) take faust's path unchanged.
    Test: ``test_deliver_in_batches_hands_runs_to_the_handler`` (and ``..._keeps_faust_order``)."""

    from faust.transport.consumer import CONSUMER_FETCHING

    async def _drain_messages(self: Any, fetcher: Any) -> None:
        direct: dict[str, Callable[[list[Any]], None]] | None = getattr(self.app, "_tripwire_direct", None)
        if not direct:
            return await original(self, fetcher)  # type: ignore[no-any-return]
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        run: list[Any] = []  # consecutive messages of one direct topic, not handled yet
        run_topic: str | None = None

        def deliver() -> None:
            nonlocal run
            if run:
                messages, run = run, []
                direct[run_topic](messages)  # type: ignore[index]

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            deliver()
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                deliver()
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                deliver()
                                self._n_acked = 0
                                await self.commit()
                            topic = message.topic
                            if topic in direct:
                                if topic != run_topic:
                                    deliver()
                                    run_topic = topic
                                run.append(message)
                            else:
                                deliver()
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                    deliver()
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    return _drain_messages


# -- the ordered list --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fix:
    """One patch: ``owner.attribute = build(owner.attribute)``; ``owner`` is ``module:Class``."""

    owner: str
    attribute: str
    build: Callable[[Any], Any]

    @property
    def name(self) -> str:
        return self.build.__name__


_CONSUMER_THREAD = "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread"
_TXN_MANAGER = "faust.transport.consumer:TransactionManager"
_RECOVERY = "faust.tables.recovery:Recovery"

FIXES: tuple[Fix, ...] = (
    Fix(_CONSUMER_THREAD, "_highwaters", recovery_highwaters),
    Fix(_TXN_MANAGER, "on_rebalance", close_open_transactions),
    Fix(_TXN_MANAGER, "on_rebalance", stop_stale_producers),  # runs before close_open_transactions
    Fix(_RECOVERY, "_resume_streams", resume_streams_last),
    Fix(_RECOVERY, "on_recovery_completed", resume_streams_last),
    Fix("faust.transport.consumer:Consumer", "_commit_offsets", flush_before_commit),
    Fix(_TXN_MANAGER, "on_rebalance", rebalance_under_flush_lock),  # outermost: runs first
    Fix("faust.transport.drivers.aiokafka:Producer", "commit_transactions", concurrent_transaction_commits),
    Fix("faust.transport.consumer:Consumer", "wait_first", deliver_without_tasks),
    Fix(_RECOVERY, "_build_highwaters", recovery_ends_at_last_record),
    Fix("faust.transport.consumer:Consumer", "_drain_messages", deliver_in_batches),
)


def resolve(owner: str) -> Any:
    """The class named ``module:Class``."""
    module, _, name = owner.partition(":")
    return getattr(import_module(module), name)


def original(owner: str, attribute: str) -> Any:
    """faust's own ``owner.attribute``, as it was before :func:`apply` (for tests)."""
    return _originals.get((owner, attribute)) or getattr(resolve(owner), attribute)


def apply() -> None:
    """Check the faust runtime, then apply :data:`FIXES` in order (once per process)."""
    global _applied
    if _applied:
        return
    from tripwire.processors._faust_check import check_runtime

    check_runtime()  # raises FaustRuntimeError naming the symbol and the supported versions
    for fix in FIXES:
        cls = resolve(fix.owner)
        current = getattr(cls, fix.attribute)
        _originals.setdefault((fix.owner, fix.attribute), current)
        setattr(cls, fix.attribute, fix.build(current))
    _applied = True
    log.debug("faust fixes applied fixes=%s", ",".join(f.name for f in FIXES))
