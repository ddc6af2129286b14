"""The seqs of one run seen so far, in bounded memory: dedup and missing seqs (issue 20).

``(run_id, seq)`` identifies an event (the SDK numbers a run's events 0, 1, 2, ...; a retried send
repeats its seq and event_id), so a run's duplicates are the seqs seen before. Keeping every seq
(and every event_id) cost ~45 bytes per event, and a run past ~11k events outgrew the state limit.

:class:`SeqTracker` keeps
- ``low``: every seq below it was seen or given up as missing (a contiguous low-water mark);
- ``above``: the seqs seen above ``low``, at most :data:`MAX_ABOVE` of them;
- ``lost``: how many seqs below ``low`` were never seen, as ranges: the first
  :data:`MAX_LOST_RANGES` listed, ``lost_ranges_n`` counting them all.

In order, ``above`` stays empty; out of order, it holds the seqs that arrived ahead of a hole
until the hole fills. Only when more than :data:`MAX_ABOVE` seqs wait above a hole is ``low``
moved past the hole, which is then counted as lost. Dedup is exact while a hole is at most
:data:`MAX_ABOVE` events deep, and for a late seq falling in a listed lost range (it is folded in
and leaves the range); a late seq below ``low`` beyond the listed ranges cannot be told from a
duplicate and is dropped as one.

The state is O(MAX_ABOVE + MAX_LOST_RANGES) whatever the run's length.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

MAX_ABOVE = 4096
"""Seqs seen above the low-water mark kept individually (the reorder depth dedup is exact for)."""
MAX_LOST_RANGES = 256
"""Ranges of seqs given up as missing listed individually (all are counted)."""


class SeqTracker:
    __slots__ = ("above", "count", "high", "lost", "lost_ranges", "lost_ranges_n", "low")

    def __init__(self) -> None:
        self.low = 0
        self.above: set[int] = set()
        self.count = 0  # distinct seqs seen (events applied)
        self.lost = 0  # seqs below ``low`` never seen
        self.lost_ranges: list[list[int]] = []  # the first MAX_LOST_RANGES of them, [first, last], in order
        self.lost_ranges_n = 0
        self.high = -1  # the highest seq seen

    @classmethod
    def of(cls, seqs: Any, count: int | None = None) -> SeqTracker:
        """A tracker having seen ``seqs`` (``count``: the events seen, when it differs)."""
        t = cls()
        for s in sorted(seqs):
            t.add(s)
        if count is not None:
            t.count = count
        return t

    def __contains__(self, seq: int) -> bool:
        if seq >= self.low:
            return seq in self.above
        return not self._in_listed_lost(seq)

    def __len__(self) -> int:
        return self.count

    def add(self, seq: int) -> bool:
        """Note ``seq``; False if it was seen (a duplicate)."""
        low = self.low
        if seq == low:
            low += 1
            above = self.above
            if above:
                while low in above:
                    above.remove(low)
                    low += 1
            self.low = low
        elif seq > low:
            if seq in self.above:
                return False
            self.above.add(seq)
            if len(self.above) > MAX_ABOVE:
                self._give_up_lowest_hole()
        elif not self._fill_lost(seq):
            return False  # seen, or lost beyond the listed ranges: cannot be told apart
        self.count += 1
        if seq > self.high:
            self.high = seq
        return True

    def _give_up_lowest_hole(self) -> None:
        """Move ``low`` past the lowest holes until at most MAX_ABOVE / 2 seqs wait above it (in
        bulk, so that a run with a hole every other seq costs O(log) per seq, not O(MAX_ABOVE))."""
        waiting = sorted(self.above)
        keep = MAX_ABOVE // 2
        low = self.low
        for s in waiting[: len(waiting) - keep]:
            if s > low:
                self._note_lost(low, s - 1)
            low = s + 1
        rest = waiting[len(waiting) - keep :]
        i = 0
        while i < len(rest) and rest[i] == low:  # seqs contiguous with the new low
            low += 1
            i += 1
        self.above = set(rest[i:])
        self.low = low

    def _note_lost(self, lo: int, hi: int) -> None:
        self.lost += hi - lo + 1
        self.lost_ranges_n += 1
        if len(self.lost_ranges) < MAX_LOST_RANGES:
            self.lost_ranges.append([lo, hi])

    def _find(self, seq: int) -> int:
        """Index of the listed lost range holding ``seq``, or -1."""
        ranges = self.lost_ranges
        i = bisect_right(ranges, seq, key=lambda r: r[0]) - 1
        return i if i >= 0 and ranges[i][1] >= seq else -1

    def _in_listed_lost(self, seq: int) -> bool:
        return self._find(seq) >= 0

    def _fill_lost(self, seq: int) -> bool:
        """A late seq inside a listed lost range: take it out of the range."""
        i = self._find(seq)
        if i < 0:
            return False
        lo, hi = self.lost_ranges[i]
        self.lost -= 1
        if lo == hi:
            del self.lost_ranges[i]
            self.lost_ranges_n -= 1
        elif seq == lo:
            self.lost_ranges[i][0] = lo + 1
        elif seq == hi:
            self.lost_ranges[i][1] = hi - 1
        else:
            self.lost_ranges[i : i + 1] = [[lo, seq - 1], [seq + 1, hi]]
            self.lost_ranges_n += 1
        return True

    # -- missing seqs ----------------------------------------------------------------------
    def missing_ranges(self, last: int | None) -> list[tuple[int, int]]:
        """The missing seqs in ``0..last`` as inclusive ranges, in order: the listed lost ranges,
        then the holes between the seqs waiting above ``low`` (at most MAX_LOST_RANGES + MAX_ABOVE + 1)."""
        if last is None:
            return []
        out = [(lo, min(hi, last)) for lo, hi in self.lost_ranges if lo <= last]
        nxt = self.low
        for s in sorted(x for x in self.above if x <= last):
            if s > nxt:
                out.append((nxt, s - 1))
            nxt = s + 1
        if nxt <= last:
            out.append((nxt, last))
        return out

    def missing_counts(self, last: int | None) -> tuple[int, int]:
        """(missing seqs, ranges of them) in ``0..last``, counting the lost ranges not listed."""
        if last is None:
            return 0, 0
        ranges = self.missing_ranges(last)
        n = sum(hi - lo + 1 for lo, hi in ranges)
        if last >= self.low - 1:  # every lost range is within 0..last: add those not listed
            listed = self.lost_ranges
            n += self.lost - sum(hi - lo + 1 for lo, hi in listed)
            return n, len(ranges) + self.lost_ranges_n - len(listed)
        return n, len(ranges)

    def complete(self, last: int | None) -> bool:
        """Every seq ``0..last`` seen (cheap: no walk over the seqs)."""
        if last is None or self.lost == 0:
            return last is None or self.low > last
        if self.low <= last or not self.lost_ranges:
            return False  # a hole at or below last; or lost ranges that are no longer listed
        return self.lost_ranges[0][0] > last  # the unlisted ones all lie after the listed ones

    # -- serialization -------------------------------------------------------------------------
    def to_list(self) -> list[Any]:
        return [
            self.low,
            sorted(self.above),
            self.count,
            self.lost,
            self.lost_ranges,
            self.lost_ranges_n,
            self.high,
        ]

    @classmethod
    def from_list(cls, d: list[Any]) -> SeqTracker:
        t = cls()
        t.low, above, t.count, t.lost, ranges, t.lost_ranges_n, t.high = d
        t.above = set(above)
        t.lost_ranges = [list(r) for r in ranges]
        return t

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeqTracker) and self.to_list() == other.to_list()

    def __repr__(self) -> str:
        return f"SeqTracker(low={self.low}, above={len(self.above)}, count={self.count}, lost={self.lost})"
