"""Four fixes to faust-streaming 0.15.3's rebalancing, applied once per process.

Fixes 1-3 only matter when partitions move between live workers of one group (scale-out, or a
worker killed while another keeps running); ``tests/integration/test_deploy_topology.py`` kills
one of two workers and fails without them. Fix 4 matters at every start after a crash;
``tests/integration/test_proc_worker.py`` (SIGKILL mid-stream) lost events without it.

1. Recovery highwaters. Under ``exactly_once`` faust reads a changelog's end from
   ``consumer.last_stable_offset(tp)``, which aiokafka only knows after a fetch of that partition:
   a partition just moved here reports ``None``, taken as -1 ("empty"). Recovery then skips the
   changelog (state silently stale) or, when a standby copy exists, stops the worker with
   ``ConsistencyError: persisted offset ... is higher than the last offset (highwater) (n > -1)``.
   The fix asks the broker: ``end_offsets`` with the consumer's ``read_committed`` isolation is the
   last stable offset.
2. Stale transactional producers. On a rebalance faust starts producers for the transactional ids
   of the assigned partitions but stops only those of ``revoked`` partitions, which its eager
   rebalance reports as empty. A producer whose partitions went to another worker (which fenced it)
   stays in faust's table; when the partitions come back, faust reuses the fenced producer and the
   worker dies with ``ProducerFenced``. The fix stops every producer whose id is not assigned
   any more before faust starts the assigned ones.
3. Open transactions of kept partitions. faust neither commits nor aborts the transaction of a
   partition a worker keeps through a rebalance (it logs ``IN_TRANSACTION -> IN_TRANSACTION``),
   and its recovery then waits for that changelog's last stable offset, which the open
   transaction holds back while processing is paused: the worker stops committing those
   partitions. The fix commits them at the rebalance (see :func:`_close_open_transaction`);
   ``benchmarks/bench_scaleout.py`` counts runs that stall.
4. Events dropped when streams resume. At the end of a rebalance faust resumes the stream
   partitions, *then* seeks them to the committed offsets, *then* resumes flow control, which
   clears every stream's queue. Events fetched in between reach a queue, move the consumer's read
   offset past them, and are cleared: the refetch after the seek drops them as already read, and
   later events are acked and committed past them (lost). The fix defers resuming the stream
   partitions until faust has sought and resumed flow (see :func:`_resume_streams_last`).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
_applied = False


async def _close_open_transaction(producer: Any, tid: str) -> None:
    """Commit what a kept partition's producer has sent since its last commit.

    Its state changes are already in the local table, so they must reach the changelog: aborting
    would lose them, and leaving the transaction open holds the changelog's last stable offset,
    which the rebalance's recovery waits for while processing is paused (the worker stalls).
    The input offsets stay uncommitted; faust re-reads those events, which the stages drop as
    already applied (event_id)."""
    async with producer._trn_locks[tid]:
        txn = producer._transaction_producers.get(tid)
        if txn is None or txn._txn_manager is None or not txn._txn_manager.is_in_transaction():
            return
        await txn.commit_transaction()
        await txn.begin_transaction()
        log.info("committed the open transaction of a kept partition id=%s", tid)


def _resume_streams_last(method: Any) -> Any:
    """Wrap a faust ``Recovery`` method that resumes the stream partitions, so that it resumes
    them last: after the seek to committed offsets and the flow-control resume (which clears the
    stream queues). On an error (another rebalance) they stay paused, as faust's next round wants."""

    async def wrapper(self: Any, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        deferred: list[Any] = []
        consumer.resume_partitions = deferred.extend  # shadows the method for this call only
        try:
            await method(self, generation_id)
        finally:
            del consumer.resume_partitions
        if deferred:
            consumer.resume_partitions(set(deferred))

    wrapper.__name__ = method.__name__
    return wrapper


def apply() -> None:
    """Patch faust's aiokafka driver and transaction manager (idempotent)."""
    global _applied
    if _applied:
        return
    from faust.tables.recovery import Recovery
    from faust.transport.consumer import TransactionManager
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    async def _highwaters(self: Any, partitions: list[Any]) -> Any:
        return await self._ensure_consumer().end_offsets(partitions)

    original_on_rebalance = TransactionManager.on_rebalance

    async def on_rebalance(self: Any, assigned: set[Any], revoked: set[Any], newly_assigned: set[Any]) -> None:
        keep = self._tps_to_transactional_ids(assigned)
        producers = self.producer._transaction_producers
        stale = sorted(tid for tid in list(producers) if tid not in keep)
        if stale:
            log.info("stopping transactional producers of partitions no longer assigned ids=%s", stale)
            await self._stop_transactions(stale)
        for tid in sorted(t for t in keep if t in producers):
            await _close_open_transaction(self.producer, tid)
        await original_on_rebalance(self, assigned, revoked, newly_assigned)

    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
    TransactionManager.on_rebalance = on_rebalance  # type: ignore[method-assign]
    Recovery._resume_streams = _resume_streams_last(Recovery._resume_streams)  # type: ignore[method-assign]
    Recovery.on_recovery_completed = _resume_streams_last(Recovery.on_recovery_completed)  # type: ignore[method-assign]
    _applied = True
