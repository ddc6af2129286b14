"""The notifier's bookkeeping, free of Kafka and HTTP: burst grouping per (route, incident) with rate
limits, and the per-partition "done" watermark that decides which offsets may be committed.

A consumed record is *done* when every route it matched has delivered it or dead-lettered it (a
record that matches no route is done at once). The committable offset of a partition is one past
the longest done prefix of the records consumed from it, in log order, so a commit never skips a
record that is still waiting, whatever order concurrent deliveries finish in.

What was done survives the loss of a partition: when a commit could not reach the broker (it was down
long enough for the group session to time out, so the assignment was revoked as lost), the partition
comes back from its last *committed* offset, and the records this notifier already delivered are
replayed. :meth:`OffsetTracker.was_done` recognises them, so they are committed, not delivered again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from tripwire.notify.channels import Notification
from tripwire.notify.routes import Route, TokenBucket


class _Partition:
    __slots__ = ("committed", "order", "remaining")

    def __init__(self) -> None:
        self.order: deque[int] = deque()
        self.remaining: dict[int, int] = {}
        self.committed: int | None = None  # next offset to commit, once known


@dataclass(frozen=True, slots=True, eq=False)
class Ref:
    """One consumed record (identity-compared); carries its bytes for the dead-letter topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    part: _Partition = field(repr=False)


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict[tuple[str, int], _Partition] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._done_before: dict[tuple[str, int], tuple[int, frozenset[int]]] = {}
        """Per partition forgotten on revocation: its done watermark and the done offsets above it."""
        self.pending = 0
        """Records consumed and not yet done (for backpressure)."""

    def track(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> Ref:
        part = self._parts.setdefault((topic, partition), _Partition())
        part.order.append(offset)
        part.remaining[offset] = 0
        self.pending += 1
        return Ref(topic, partition, offset, key, value, part)

    def add(self, ref: Ref, n: int = 1) -> None:
        """``ref`` now waits for ``n`` more outcomes (one per route it matched)."""
        ref.part.remaining[ref.offset] += n

    def settle(self, ref: Ref) -> None:
        """Call once after :meth:`track` and its :meth:`add` calls: a record that waits for nothing is done."""
        if ref.part.remaining.get(ref.offset) == 0:
            self._advance(ref)

    def done(self, ref: Ref) -> None:
        """One outcome for ``ref`` (a delivery or a dead letter) is final."""
        left = ref.part.remaining.get(ref.offset)
        if left is None:  # the partition was revoked meanwhile: its next owner replays it
            return
        ref.part.remaining[ref.offset] = left - 1
        if left - 1 <= 0:
            self._advance(ref)

    def _advance(self, ref: Ref) -> None:
        part = ref.part
        if self._parts.get((ref.topic, ref.partition)) is not part:
            return
        moved = False
        while part.order and part.remaining.get(part.order[0]) == 0:
            off = part.order.popleft()
            del part.remaining[off]
            part.committed = off + 1
            self.pending -= 1
            moved = True
        if moved:
            self._dirty.add((ref.topic, ref.partition))

    def committable(self) -> dict[tuple[str, int], int]:
        """Offsets to commit (next offset to read) for partitions whose watermark moved since the last call."""
        out = {}
        for tp in self._dirty:
            part = self._parts.get(tp)
            if part is not None and part.committed is not None:
                out[tp] = part.committed
        self._dirty.clear()
        return out

    def retry_commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """A commit of these partitions failed: offer their (current) watermark again."""
        self._dirty.update(tp for tp in offsets if tp in self._parts)

    def was_done(self, topic: str, partition: int, offset: int) -> bool:
        """True if this tracker saw ``offset`` done before its partition was forgotten (a replay after a
        revocation whose commit did not reach the broker)."""
        known = self._done_before.get((topic, partition))
        return known is not None and (offset < known[0] or offset in known[1])

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """The partitions were revoked: drop their waiting records, remember what was done."""
        for tp in partitions:
            part = self._parts.pop(tp, None)
            if part is not None:
                self.pending -= len(part.order)
                above = frozenset(off for off in part.order if part.remaining.get(off) == 0)
                watermark, before = self._done_before.get(tp, (-1, frozenset()))
                if part.committed is not None and part.committed > watermark:
                    watermark, before = part.committed, frozenset(o for o in before if o >= part.committed)
                self._done_before[tp] = (watermark, before | above)
                part.remaining.clear()
            self._dirty.discard(tp)


@dataclass(slots=True)
class Batch:
    """One delivery: a route, the (folded) notification and every record it covers."""

    route: Route
    notification: Notification
    refs: list[Ref]


@dataclass(slots=True)
class _Slot:
    pending: Notification | None = None
    refs: list[Ref] = field(default_factory=list)
    first_at: float = 0.0
    in_flight: bool = False
    last_sent_at: float | None = None
    last_action: str | None = None


class Grouper:
    """Pending notifications per (route, dedup_key). One incident on one route is never in flight twice,
    so a resolve cannot overtake its trigger. Rate-limited routes keep folding while they wait."""

    def __init__(self, routes: Iterable[Route], now: float) -> None:
        self.routes = {r.name: r for r in routes}
        self._buckets = {r.name: TokenBucket(r.rate_limit, now) for r in self.routes.values() if r.rate_limit}
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._waiting: dict[tuple[str, str], None] = {}  # insertion-ordered: ties go oldest first

    def add(self, route: Route, n: Notification, ref: Ref, now: float) -> None:
        key = (route.name, n.dedup_key)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if slot.pending is None:
            slot.pending, slot.first_at = n, now
        else:
            slot.pending = slot.pending.merge(n)
        slot.refs.append(ref)
        self._waiting[key] = None

    def _ready_at(self, route: Route, slot: _Slot) -> float:
        assert slot.pending is not None
        at = slot.first_at + route.group_wait_s
        if slot.pending.action == "trigger" and slot.last_sent_at is not None and slot.last_action == "trigger":
            at = max(at, slot.last_sent_at + route.group_interval_s)
        return at

    def due(self, now: float, limit: int | None = None) -> list[Batch]:
        """Take (oldest first, at most ``limit``) the batches whose group wait/interval passed and
        whose route has a token."""
        out: list[Batch] = []
        for key in sorted(self._waiting, key=lambda k: self._slots[k].first_at):
            if limit is not None and len(out) >= limit:
                break
            slot = self._slots[key]
            route = self.routes[key[0]]
            if slot.in_flight or slot.pending is None or now < self._ready_at(route, slot):
                continue
            bucket = self._buckets.get(route.name)
            if bucket is not None and not bucket.try_take(now):
                continue
            out.append(Batch(route, slot.pending, slot.refs))
            slot.pending, slot.refs, slot.in_flight = None, [], True
            self._waiting.pop(key, None)
        return out

    def next_due_in(self, now: float) -> float | None:
        """Seconds until the earliest waiting batch could go (None: nothing waits)."""
        best: float | None = None
        for key in self._waiting:
            slot = self._slots[key]
            if slot.in_flight or slot.pending is None:
                continue
            route = self.routes[key[0]]
            wait = max(0.0, self._ready_at(route, slot) - now)
            bucket = self._buckets.get(route.name)
            if bucket is not None:
                wait = max(wait, bucket.wait_s(now))
            best = wait if best is None else min(best, wait)
        return best

    def finished(self, batch: Batch, now: float, delivered: bool) -> None:
        key = (batch.route.name, batch.notification.dedup_key)
        slot = self._slots.get(key)
        if slot is None:
            return
        slot.in_flight = False
        if delivered:
            slot.last_sent_at, slot.last_action = now, batch.notification.action
        if slot.pending is None and (not delivered or batch.notification.action == "resolve"):
            del self._slots[key]

    def gc(self, now: float) -> None:
        """Drop idle slots whose group interval is over (they hold no state worth keeping)."""
        for key in [k for k, s in self._slots.items() if s.pending is None and not s.in_flight]:
            slot = self._slots[key]
            route = self.routes[key[0]]
            if slot.last_sent_at is None or now - slot.last_sent_at >= route.group_interval_s:
                del self._slots[key]

    def drop(self, partitions: set[tuple[str, int]]) -> int:
        """Forget waiting records of revoked partitions (their next owner replays them); returns how many."""
        dropped = 0
        for key in list(self._waiting):
            slot = self._slots[key]
            keep = [r for r in slot.refs if (r.topic, r.partition) not in partitions]
            dropped += len(slot.refs) - len(keep)
            slot.refs = keep
            if not keep:
                slot.pending = None
                self._waiting.pop(key, None)
        return dropped

    @property
    def waiting(self) -> int:
        return len(self._waiting)
