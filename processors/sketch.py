"""A mergeable latency sketch: DDSketch bins kept as a plain dict (cheap to store as JSON).

Values map to bins with DDSketch's logarithmic mapping, so every quantile is within
``relative_accuracy`` of the exact value at the same rank. ``to_bytes`` writes the standard
DDSketch protobuf (readable by the Go, Java, JS and Python DDSketch libraries) so windows can
be merged later; ``from_bytes`` reads it back.
"""

from __future__ import annotations

from typing import Any

from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.pb.proto import KeyMappingProto, pb


class LatencySketch:
    """Counts of non-negative values (milliseconds) per logarithmic bin, plus the zero bin."""

    __slots__ = ("bins", "count", "mapping", "zero_count")

    def __init__(self, relative_accuracy: float = 0.01, bins: dict[int, int] | None = None, zero_count: int = 0):
        self.mapping = LogarithmicMapping(relative_accuracy)
        self.bins: dict[int, int] = bins or {}
        self.zero_count = zero_count
        self.count = zero_count + sum(self.bins.values())

    @property
    def relative_accuracy(self) -> float:
        return self.mapping.relative_accuracy

    def add(self, value: float) -> None:
        if value > self.mapping.min_possible:
            k = self.mapping.key(value)
            self.bins[k] = self.bins.get(k, 0) + 1
        else:
            self.zero_count += 1
        self.count += 1

    def merge(self, other: LatencySketch) -> None:
        if abs(other.mapping.gamma - self.mapping.gamma) > 1e-9:
            raise ValueError(
                f"cannot merge sketches of accuracy {other.relative_accuracy} and {self.relative_accuracy}"
            )
        for k, c in other.bins.items():
            self.bins[k] = self.bins.get(k, 0) + c
        self.zero_count += other.zero_count
        self.count += other.count

    def quantile(self, q: float) -> float:
        """The value at rank ``q * (count - 1)`` (DDSketch's definition); 0.0 when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], got {q}")
        if self.count == 0:
            return 0.0
        rank = q * (self.count - 1)
        if rank < self.zero_count:
            return 0.0
        seen = self.zero_count
        for k in sorted(self.bins):
            seen += self.bins[k]
            if seen > rank:
                return float(self.mapping.value(k))
        return float(self.mapping.value(max(self.bins)))

    # -- state (JSON) -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"a": self.relative_accuracy, "z": self.zero_count, "b": [[k, c] for k, c in sorted(self.bins.items())]}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> LatencySketch:
        return cls(d["a"], {int(k): int(c) for k, c in d["b"]}, int(d["z"]))

    # -- interchange (DDSketch protobuf) ------------------------------------------------------
    def to_ddsketch(self) -> DDSketch:
        """A ``ddsketch.DDSketch`` holding the same bins (for its merge/quantile API)."""
        s = DDSketch(self.relative_accuracy)
        for k, c in sorted(self.bins.items()):
            s._store.add(k, float(c))
        s._zero_count = float(self.zero_count)
        s._count = float(self.count)
        return s

    def to_bytes(self) -> bytes:
        """The DDSketch protobuf, with the positive bins written contiguously from the lowest key."""
        lo = min(self.bins) if self.bins else 0
        hi = max(self.bins) if self.bins else -1
        counts = [float(self.bins.get(k, 0)) for k in range(lo, hi + 1)]
        proto = pb.DDSketch(
            mapping=KeyMappingProto.to_proto(self.mapping),
            positiveValues=pb.Store(contiguousBinCounts=counts, contiguousBinIndexOffset=lo),
            negativeValues=pb.Store(),
            zeroCount=float(self.zero_count),
        )
        return proto.SerializeToString()  # type: ignore[no-any-return]

    @classmethod
    def from_bytes(cls, data: bytes) -> LatencySketch:
        proto = pb.DDSketch()
        proto.ParseFromString(data)
        gamma = proto.mapping.gamma
        out = cls((gamma - 1.0) / (gamma + 1.0))
        store = proto.positiveValues
        for i, c in enumerate(store.contiguousBinCounts):
            if c:
                out.bins[store.contiguousBinIndexOffset + i] = round(c)
        for k, c in store.binCounts.items():
            out.bins[k] = out.bins.get(k, 0) + round(c)
        out.zero_count = round(proto.zeroCount)
        out.count = out.zero_count + sum(out.bins.values())
        return out
