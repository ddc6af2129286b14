"""Three fixes to faust-streaming 0.15.3's exactly-once rebalancing, applied once per process.

Both only matter when partitions move between live workers of one group (scale-out, or a worker
killed while another keeps running); a single worker restarting from scratch never hits them.
``tests/integration/test_deploy_topology.py`` kills one of two workers and fails without them.

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


def apply() -> None:
    """Patch faust's aiokafka driver and transaction manager (idempotent)."""
    global _applied
    if _applied:
        return
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
    _applied = True
