"""Send a worker's pending records right before faust commits offsets.

The runtime queues everything a message causes (``Runtime.flush``); this hook makes faust's offset
commit send it first, under one lock, so the records and the offsets of the messages that caused
them land in the same transaction (or, without ``exactly_once``, the records are delivered before
the offsets are committed: at least once). The same lock keeps faust's rebalance handling of the
transactional producers from running in the middle of a flush.

faust commits the transactions of a worker's partitions one after the other (each takes a few
round trips to the transaction coordinator); the hook commits them concurrently, which cuts the
time an output waits for its commit on a worker with many partitions.

A flush that fails (the broker refused a send, a fenced producer) stops the worker, as faust does
for its own send errors: its uncommitted messages are read again by the next owner of their
partitions.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)
_patched = False


class _Flusher:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.lock = asyncio.Lock()


def install(app: Any, runtime: Any) -> None:
    """Flush ``runtime``'s pending records before every offset commit of ``app``."""
    app._tripwire_flusher = _Flusher(runtime)
    _patch()


def _patch() -> None:
    global _patched
    if _patched:
        return
    from faust.transport.consumer import Consumer, TransactionManager
    from faust.transport.drivers.aiokafka import Producer

    commit_offsets = Consumer._commit_offsets
    on_rebalance = TransactionManager.on_rebalance

    async def _commit_offsets(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        flusher = getattr(self.app, "_tripwire_flusher", None)
        if flusher is None:
            return await commit_offsets(self, offsets, start_new_transaction)
        async with flusher.lock:
            try:
                await flusher.runtime.flush()
            except Exception as e:
                log.exception("sending the pending records failed; the worker stops, its uncommitted input is replayed")
                await self.crash(e)
                return False
            return await commit_offsets(self, offsets, start_new_transaction)

    async def _on_rebalance(self: Any, assigned: Any, revoked: Any, newly_assigned: Any) -> None:
        flusher = getattr(self.app, "_tripwire_flusher", None)
        if flusher is None:
            return await on_rebalance(self, assigned, revoked, newly_assigned)
        async with flusher.lock:
            return await on_rebalance(self, assigned, revoked, newly_assigned)

    async def _commit_transactions(
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
                if start_new_transaction:
                    await txn.begin_transaction()

        await asyncio.gather(*(commit(tid, offsets) for tid, offsets in tid_to_offset_map.items()))

    Consumer._commit_offsets = _commit_offsets  # type: ignore[method-assign]
    TransactionManager.on_rebalance = _on_rebalance  # type: ignore[method-assign]
    Producer.commit_transactions = _commit_transactions  # type: ignore[method-assign]
    _patched = True
