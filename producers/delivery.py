"""Loss-free, non-blocking delivery: the agent thread appends, one daemon worker does the rest.

Modelled on OpenTelemetry's ``BatchProcessor``: the hot path (:meth:`Delivery.emit`) only appends
``(key, value)`` to a bounded ``deque``. The worker thread moves records to the transport, serves
delivery reports, and keeps one logical FIFO so that per-run order survives an outage:

* *direct* mode (the spool holds nothing unread): records go to the transport while it has room
  (``inflight_max`` pending when healthy, ``probe_inflight`` while the broker is down). With the
  *durable hand-off* (``handoff: durable``, the default when the spool is on) the worker first appends
  the whole batch it took from the queue to a *live* spool segment, writes it in one ``write`` (and one
  ``fsync`` per the ``fsync`` setting), and only then hands the records to the transport; each broker
  ack marks its record settled in the segment's ``.ack`` file (one ``write`` per worker iteration). A
  process that dies leaves the unmarked records to the next one, which replays them: nothing handed to
  the transport is lost, and only those records can arrive twice. ``handoff: memory`` skips the log;
* *spool* mode (anything unread on disk): new records are appended to the spool's tail, and whole
  segments are replayed from its head once the transport is healthy. A segment is deleted when every
  record in it was delivered (or re-spooled).

When the hand-off queue itself is full (the worker cannot keep up), the agent thread does not drop and
does not block: it encodes the record and appends it to an *overflow* spool (a second lane, under a
lock, only in that state), and keeps doing so until the worker has drained the queue, the main spool
and then the overflow lane; so per-run order holds here too. A new process adopts a previous overflow
lane at the tail of its main spool.

At ``close`` whatever the transport still holds is purged and *prepended* to the spool, and whatever
the worker had not taken yet is appended, so the next process replays it in the original order. Errors
are logged (rate-limited) and counted, never raised into the agent.

After ``fork`` the child gets a fresh queue, a fresh transport client, its own spool slot and a new
worker thread (``os.register_at_fork``, as OpenTelemetry's ``BatchProcessor`` does); what the parent
held stays the parent's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tripwire.core.ratelimit import RateLimitedLog
from tripwire.producers.config import DeliverySettings
from tripwire.producers.spool import Spool
from tripwire.producers.transport import DeliveryFailure, Transport

logger = logging.getLogger(__name__)

_MOVE_BATCH = 5_000
_PROBE_EVERY_S = 0.5
_PROBE_TIMEOUT_S = 0.25


@dataclass(frozen=True, slots=True)
class DeliveryCounters:
    emitted: int
    delivered: int
    spooled: int
    replayed: int
    dropped: int
    queued: int
    pending: int
    spool_bytes: int
    spool_corrupt: int
    logged: int = 0
    """Records appended to the durable log before being handed to the transport."""


class Delivery:
    """Owns the hand-off queue, the worker thread, the transport and the spool."""

    def __init__(
        self,
        transport: Transport,
        settings: DeliverySettings,
        spool: Spool | None = None,
        encoder: Callable[..., bytes] | None = None,
    ) -> None:
        self.settings = settings
        self._encoder = encoder
        self._transport = transport
        self._spool = spool
        self._durable = spool is not None and settings.handoff == "durable"
        self._fsync = settings.fsync if self._durable else "off"
        self._ov: Spool | None = None
        if spool is not None:
            self._ov = Spool(spool.dir / "overflow", max_bytes=spool.max_bytes, segment_bytes=spool.segment_bytes)
            adopted = spool.adopt(self._ov)  # a previous process's overflow lane goes after its main spool
            if adopted:
                logger.info("tripwire adopted overflow segments from a previous run count=%d", adopted)
        self._queue_max = settings.queue_max
        self._log = RateLimitedLog(logger, interval_s=10.0)
        self._reset_state()
        transport.start(self._on_delivery)
        self._start_worker()
        ref = weakref.WeakMethod(self._after_fork_in_child)
        os.register_at_fork(after_in_child=lambda: _call(ref))

    def _reset_state(self) -> None:
        """Queue, locks, counters and the worker's bookkeeping, fresh (at start, and in a forked child)."""
        self.encode_errors = 0
        self._overflow = False
        self._ov_lock = threading.RLock()
        self._ov_spooled = 0
        self._queue: deque[tuple[bytes, Any]] = deque()
        self._drop_lock = threading.Lock()
        self._dropped_at_emit = 0
        # worker-owned counters
        self._taken = 0
        self._delivered = 0
        self._spooled = 0
        self._replayed = 0
        self._dropped = 0
        self._logged = 0
        self._order = 0
        self._rescued: list[tuple[int, bytes, bytes, int | None, int]] = []  # (order, key, value, segment, index)
        self._marks: list[tuple[int, int]] = []  # (segment, index) settled since the last _settle
        self._seg_outstanding: dict[int, int] = {}  # segment -> records handed over, not yet reported
        self._last_probe = 0.0
        self._last_sync = 0.0
        self._iterations = 0
        self._idle_seen = False
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._progress = threading.Condition()
        self._closed = False

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name="tripwire-delivery", daemon=True)
        self._worker.start()

    def _after_fork_in_child(self) -> None:
        """In a forked child: the parent's worker thread, Kafka client, queue and spool slot are the parent's.

        Start over with a fresh queue and counters, a new transport client, a spool slot of the child's
        own and a new worker thread. A tracer already closed in the parent stays closed.
        """
        closed = self._closed
        for s in (self._spool, self._ov):
            if s is not None:
                s.abandon()
        spool = self._spool
        self._reset_state()
        if closed:
            self._closed = True
            self._stopped.set()
            return
        try:
            if spool is not None:
                self._spool = Spool(spool.root, max_bytes=spool.max_bytes, segment_bytes=spool.segment_bytes)
                self._ov = Spool(
                    self._spool.dir / "overflow", max_bytes=spool.max_bytes, segment_bytes=spool.segment_bytes
                )
                self._spool.adopt(self._ov)
            self._transport.restart_after_fork(self._on_delivery)
        except Exception as e:
            logger.error("tripwire could not restart delivery after fork, events dropped error=%r", e)
            self._spool = self._ov = None
            self._closed = True
            self._stopped.set()
            return
        self._start_worker()
        logger.info("tripwire delivery restarted in forked child pid=%d", os.getpid())

    # -- agent thread ------------------------------------------------------------------------------
    def emit(self, key: bytes, value: bytes | tuple[Any, ...]) -> None:
        """Append one record (bytes, or the arguments of the encoder); never blocks, never raises."""
        q = self._queue
        if not self._overflow and len(q) < self._queue_max and not self._closed:
            q.append((key, value))
            return
        self._emit_overflow(key, value)

    def _emit_overflow(self, key: bytes, value: bytes | tuple[Any, ...]) -> None:
        ov = self._ov
        if ov is None or self._closed:
            with self._drop_lock:
                self._dropped_at_emit += 1
            self._log.warning("emit.drop", "tripwire queue full or closed, event dropped queue_max=%d", self._queue_max)
            return
        try:
            data = value if type(value) is bytes else self._encoder(*value)  # type: ignore[misc]
        except Exception as e:
            with self._drop_lock:
                self._dropped_at_emit += 1
            self._log.error("encode", "tripwire could not encode an event, dropped error=%r", e)
            return
        with self._ov_lock:
            if not self._overflow:
                self._overflow = True
                self._log.warning("overflow", "tripwire queue full, spilling to disk queue_max=%d", self._queue_max)
            if ov.append(key, data):  # type: ignore[arg-type]
                self._ov_spooled += 1
                return
        with self._drop_lock:
            self._dropped_at_emit += 1
        self._log.warning("spool.drop", "tripwire spool full, event dropped spool_bytes=%d", ov.total_bytes)

    def has_room(self, n: int, approx_bytes: int = 0) -> bool:
        """Whether ``n`` more records (about ``approx_bytes`` in all) would be accepted now: room in the
        hand-off queue, or else in the overflow spool. For a server deciding to push back (the OTLP
        receiver); the agent path never asks."""
        if self._closed:
            return False
        if not self._overflow and len(self._queue) + n <= self._queue_max:
            return True
        ov = self._ov
        return ov is not None and ov.total_bytes + approx_bytes + 64 * n <= ov.max_bytes

    def wait_accepted(self, timeout: float) -> bool:
        """Wait until every record emitted before this call has left the hand-off queue and the worker's
        iteration that took it has ended: it was then handed to the transport, written to the durable
        log or to the spool (or counted as dropped). Records that went to the overflow spool at ``emit``
        are already on disk. True if so within ``timeout``."""
        target = self._taken + len(self._queue)
        deadline = time.monotonic() + timeout
        seen_at: int | None = None
        with self._progress:
            while True:
                if self._stopped.is_set():
                    return self._taken >= target
                if seen_at is None and self._taken >= target:
                    seen_at = self._iterations
                if seen_at is not None and self._iterations > seen_at:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.05))

    def counters(self) -> DeliveryCounters:
        queued = len(self._queue)
        spool = self._spool
        return DeliveryCounters(
            emitted=self._taken + queued + self._dropped_at_emit + self._ov_spooled,
            delivered=self._delivered,
            spooled=self._spooled + self._ov_spooled,
            replayed=self._replayed,
            dropped=self._dropped + self._dropped_at_emit,
            queued=queued,
            pending=self._safe_pending(),
            spool_bytes=(spool.total_bytes + self._ov.total_bytes) if spool is not None and self._ov else 0,
            spool_corrupt=(spool.stats.corrupt + self._ov.stats.corrupt) if spool is not None and self._ov else 0,
            logged=self._logged,
        )

    def _safe_pending(self) -> int:
        try:
            return self._transport.pending()
        except Exception:
            return 0

    def _idle(self) -> bool:
        spool_idle = self._spool is None or self._spool.is_empty()
        return (
            not self._queue
            and not self._rescued
            and self._safe_pending() == 0
            and spool_idle
            and not any(n > 0 for n in self._seg_outstanding.values())
            and not self._overflow
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything emitted so far is delivered (or the timeout passes). True if so.

        Idleness is judged by the worker at the end of a full iteration that began after this call,
        so a record in transit between two of its structures is never mistaken for delivered.
        """
        t = self.settings.flush_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + t
        start = self._iterations
        with self._progress:
            while True:
                if self._stopped.is_set():
                    return self._idle()
                if self._iterations >= start + 2 and self._idle_seen and not self._queue:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.05))

    # -- worker thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        interval = self.settings.poll_interval_s
        try:
            while not self._stop.is_set():
                try:
                    busy = self._step()
                    self._transport.poll(0 if busy else interval)
                    self._settle()
                except Exception as e:
                    self._log.error("worker.error", "tripwire delivery worker error=%r", e)
                    time.sleep(interval)
                try:
                    self._idle_seen = self._idle()
                except Exception:
                    self._idle_seen = False
                self._iterations += 1
                with self._progress:
                    self._progress.notify_all()
        finally:
            self._stopped.set()
            with self._progress:
                self._progress.notify_all()

    def _encode(self, item: tuple[Any, ...]) -> bytes | None:
        try:
            if self._encoder is None:
                raise TypeError("a record to encode was queued but the delivery has no encoder")
            return self._encoder(*item)
        except Exception as e:
            self.encode_errors += 1
            self._dropped += 1
            self._log.error("encode", "tripwire could not encode an event, dropped error=%r", e)
            return None

    def _capacity(self) -> int:
        t = self._transport
        limit = self.settings.inflight_max if t.healthy else self.settings.probe_inflight
        return limit - t.pending()

    def _spool_mode(self) -> bool:
        return self._spool is not None and self._spool.has_unread()

    def _to_spool(self, key: bytes, value: bytes) -> None:
        spool = self._spool
        if spool is not None and spool.append(key, value):
            self._spooled += 1
            return
        self._dropped += 1
        self._log.warning(
            "spool.drop",
            "tripwire spool %s, event dropped spool_bytes=%d",
            "disabled" if spool is None else "full",
            0 if spool is None else spool.total_bytes,
        )

    def _produce(self, key: bytes, value: bytes, seg_id: int | None, idx: int = -1, replay: bool = False) -> None:
        # the token: the produce order (failed records are re-spooled in that order, whatever order
        # their reports come back in), plus, for a record on disk, its segment and index (to mark it)
        self._order += 1
        self._transport.produce(key, value, self._order if seg_id is None else (self._order, seg_id, idx, replay))

    def _step(self) -> bool:
        """Move queued records, replay the spool when possible. True if there is more to do right away."""
        q = self._queue
        t = self._transport
        spool = self._spool
        moved = 0
        if q:
            cap = self._capacity()
            spool_mode = self._spool_mode()
            durable = self._durable
            live: list[tuple[bytes, bytes, int, int]] = []
            while q and moved < _MOVE_BATCH:
                key, value = q.popleft()
                self._taken += 1
                moved += 1
                if type(value) is tuple:
                    value = self._encode(value)
                    if value is None:
                        continue
                if not spool_mode and cap > 0:
                    if durable:
                        pos = spool.append_live(key, value)  # type: ignore[union-attr]
                        if pos is not None:
                            live.append((key, value, pos[0], pos[1]))
                            cap -= 1
                            continue
                        # the log refused it (full, or a write error): hand it over from memory, after
                        # the records ahead of it (per-run order)
                        if live:
                            self._write_log()
                            self._hand_over(live)
                            live = []
                    try:
                        self._produce(key, value, None)
                        cap -= 1
                        continue
                    except BufferError:
                        cap = 0
                spool_mode = True
                self._to_spool(key, value)
            if spool is not None:
                self._write_log()
            if live:
                self._hand_over(live)
        elif spool is not None:
            self._write_log()
        if spool is not None:
            if not t.healthy and t.pending() == 0 and spool.has_unread():
                now = time.monotonic()
                if now - self._last_probe >= _PROBE_EVERY_S:
                    self._last_probe = now
                    t.probe(_PROBE_TIMEOUT_S)
            if t.healthy and spool.has_unread() and t.pending() < self.settings.inflight_max // 2:
                self._replay_one(spool)
                moved += 1
            elif self._overflow and not q and not spool.has_unread():
                moved += self._drain_overflow()
        return bool(q) or moved >= _MOVE_BATCH

    def _write_log(self) -> None:
        """Write what this iteration appended (one ``write`` per file), fsync per the ``fsync`` setting."""
        spool = self._spool
        assert spool is not None
        mode = self._fsync
        sync = mode == "batch"
        if mode == "interval":
            now = time.monotonic()
            if now - self._last_sync >= self.settings.fsync_interval_ms / 1000:
                sync, self._last_sync = True, now
        try:
            spool.sync() if sync else spool.flush()
            if self._overflow and self._ov is not None:
                with self._ov_lock:  # the agent threads append to the overflow lane only in that state
                    self._ov.sync() if sync else self._ov.flush()
        except OSError as e:
            self._log.error("spool.write", "tripwire spool write failed error=%r", e)

    def _hand_over(self, live: list[tuple[bytes, bytes, int, int]]) -> None:
        """Hand records already on disk to the transport; what it refuses is re-spooled by ``_settle``."""
        outstanding = self._seg_outstanding
        self._logged += len(live)
        for i, (key, value, seg_id, idx) in enumerate(live):
            outstanding[seg_id] = outstanding.get(seg_id, 0) + 1
            try:
                self._produce(key, value, seg_id, idx)
            except BufferError:
                outstanding[seg_id] -= 1
                self._rescued.extend((self._order + j, k, v, s, x) for j, (k, v, s, x) in enumerate(live[i:], 1))
                self._order += len(live) - i
                return

    def _drain_overflow(self) -> int:
        """Once the queue and the main spool are drained, move the overflow lane on (oldest first)."""
        ov = self._ov
        assert ov is not None
        t = self._transport
        with self._ov_lock:
            if not ov.has_unread():
                self._overflow = False  # all of it is ahead of anything the agents enqueue from now on
                return 0
            got = ov.checkout_indexed() if t.healthy and t.pending() < self.settings.inflight_max // 2 else None
            if got is None and t.healthy:
                return 0
            if got is None:
                # the broker is down: move the lane into the main spool (same order), the outage path takes over
                moved = 0
                while (seg := ov.checkout()) is not None:
                    for k, v in seg[1]:
                        self._to_spool(k, v)
                        moved += 1
                    ov.delete(seg[0])
                self._overflow = False
                return moved
        seg_id, records = got
        key = -seg_id
        self._seg_outstanding[key] = len(records)
        for idx, k, v in records:
            while True:
                try:
                    self._produce(k, v, key, idx, replay=True)
                    break
                except BufferError:
                    self._transport.poll(0.05)
        return len(records)

    def _replay_one(self, spool: Spool) -> None:
        got = spool.checkout_indexed()
        if got is None:
            return
        seg_id, records = got
        if not records:
            spool.delete(seg_id)
            return
        self._seg_outstanding[seg_id] = len(records)
        for i, (idx, key, value) in enumerate(records):
            while True:
                try:
                    self._produce(key, value, seg_id, idx, replay=True)
                    break
                except BufferError:
                    self._transport.poll(0.05)
                    if self._stop.is_set():
                        # give the unsent rest back, durably, ahead of everything else
                        rest = records[i:]
                        self._seg_outstanding[seg_id] -= len(rest)
                        self._rescued.extend((self._order + j, k, v, seg_id, x) for j, (x, k, v) in enumerate(rest, 1))
                        self._order += len(rest)
                        return
        logger.info("tripwire spool replaying segment=%d records=%d", seg_id, len(records))

    def _settle(self) -> None:
        """Re-spool failed records ahead of everything (keeps the order), write the settled marks, drop
        segments whose records are all settled."""
        spool = self._spool
        if self._rescued:
            rescued = sorted(self._rescued, key=lambda r: r[0])
            self._rescued = []
            if spool is not None:
                try:
                    spool.prepend([(k, v) for _, k, v, _, _ in rescued])
                    self._spooled += len(rescued)
                    # durable in the new segment: the originals are settled
                    self._marks.extend((seg, idx) for _, _, _, seg, idx in rescued if seg is not None)
                except OSError as e:
                    self._dropped += len(rescued)
                    logger.error("tripwire spool prepend failed, events dropped count=%d error=%s", len(rescued), e)
            else:
                self._dropped += len(rescued)
                self._log.warning(
                    "spool.drop", "tripwire spool disabled, undelivered events dropped count=%d", len(rescued)
                )
        if spool is None:
            return
        if self._marks:
            by_seg: dict[int, list[int]] = {}
            for seg, idx in self._marks:
                by_seg.setdefault(seg, []).append(idx)
            self._marks = []
            for seg, idxs in by_seg.items():
                try:
                    if seg < 0:
                        if self._ov is not None:
                            with self._ov_lock:
                                self._ov.mark(-seg, idxs)
                    else:
                        spool.mark(seg, idxs)
                except OSError as e:  # the records stay unmarked: a later process sends them again
                    self._log.error("spool.mark", "tripwire could not mark records delivered error=%r", e)
        for seg_id, left in list(self._seg_outstanding.items()):
            if left <= 0 and not spool.is_active(seg_id):
                del self._seg_outstanding[seg_id]
                if seg_id < 0 and self._ov is not None:
                    with self._ov_lock:
                        self._ov.delete(-seg_id)
                else:
                    spool.delete(seg_id)

    def _on_delivery(
        self, token: int | tuple[int, int, int, bool], key: bytes, value: bytes, err: DeliveryFailure | None
    ) -> None:
        if type(token) is int:
            order, seg_id, idx, replay = token, None, -1, False
        else:
            order, seg_id, idx, replay = token  # type: ignore[misc]
        if err is None:
            self._delivered += 1
            if seg_id is not None:
                self._marks.append((seg_id, idx))
                if replay:
                    self._replayed += 1
        elif err.permanent:
            self._dropped += 1
            if seg_id is not None:
                self._marks.append((seg_id, idx))
            self._log.error("deliver.permanent", "tripwire event can never be delivered, dropped reason=%s", err.reason)
        else:
            # purged at close, or a retriable failure: re-spooled ahead of newer records by _settle
            if not err.purged:
                self._log.warning("deliver.retry", "tripwire delivery failed, re-spooled reason=%s", err.reason)
            self._rescued.append((order, key, value, seg_id, idx))
        if seg_id is not None:
            self._seg_outstanding[seg_id] -= 1

    # -- shutdown ----------------------------------------------------------------------------------
    def close(self, timeout: float | None = None) -> bool:
        """Deliver what can be delivered within ``timeout``; spool the rest for the next process.

        Idempotent. Returns True if nothing was left undelivered (nothing spooled for later).
        """
        if self._closed:
            return True
        t = self.settings.close_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + t
        clean = self.flush(max(0.0, t * 0.8))
        self._closed = True
        self._stop.set()
        self._worker.join(max(0.1, deadline - time.monotonic()))
        if self._worker.is_alive():
            logger.error("tripwire delivery worker did not stop; the spool is left as is")
            return False
        try:
            clean = self._finish() and clean
        except Exception as e:
            logger.error("tripwire close failed error=%r", e)
            clean = False
        c = self.counters()
        logger.info(
            "tripwire delivery closed emitted=%d delivered=%d spooled=%d replayed=%d dropped=%d spool_bytes=%d",
            c.emitted,
            c.delivered,
            c.spooled,
            c.replayed,
            c.dropped,
            c.spool_bytes,
        )
        return clean

    def _finish(self) -> bool:
        """After the worker stopped: purge what the transport holds and spool every leftover in order."""
        t = self._transport
        clean = True
        if t.pending():
            clean = False
            t.purge()
            for _ in range(50):
                t.poll(0.01)
                if not t.pending():
                    break
        if self._rescued:
            clean = False
        self._settle()
        spool = self._spool
        if spool is not None:
            for seg_id, left in list(self._seg_outstanding.items()):
                if left <= 0:
                    continue  # the active live segment, all settled: deleted once sealed, below
                # records never reported: their segment stays for the next process (minus what is marked)
                del self._seg_outstanding[seg_id]
                if seg_id < 0 and self._ov is not None:
                    self._ov.release(-seg_id)
                else:
                    spool.release(seg_id)
        while self._queue:
            clean = False
            key, value = self._queue.popleft()
            self._taken += 1
            if type(value) is tuple:
                value = self._encode(value)
                if value is None:
                    continue
            self._to_spool(key, value)
        if spool is not None:
            spool.seal()
            self._settle()  # the last live segment, now sealed
            spool.close()
        if self._ov is not None:
            with self._ov_lock:
                if self._ov.has_unread():
                    clean = False
                self._ov.close()  # what is left is adopted by the next process, after its main spool
        t.close()
        return clean


def _call(ref: weakref.WeakMethod[Callable[[], None]]) -> None:
    method = ref()
    if method is not None:
        method()


__all__ = ["Delivery", "DeliveryCounters"]
