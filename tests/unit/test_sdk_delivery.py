"""The delivery worker with an in-process transport: failures spool, replay keeps order, close hands over."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tripwire.producers.config import DeliverySettings
from tripwire.producers.delivery import Delivery
from tripwire.producers.spool import Spool, read_all
from tripwire.producers.transport import QueueTransport

pytestmark = pytest.mark.unit


class FlakySink:
    def __init__(self) -> None:
        self.up = True
        self.got: list[tuple[bytes, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, key: bytes, value: bytes) -> None:
        if not self.up:
            raise ConnectionError("sink down")
        with self.lock:
            self.got.append((key, value))


def _delivery(tmp_path: Path, sink: FlakySink, **kw) -> Delivery:
    settings = DeliverySettings(spool_dir=tmp_path, segment_bytes=2048, poll_interval_s=0.005, **kw)
    spool = Spool(tmp_path, max_bytes=settings.spool_max_bytes, segment_bytes=settings.segment_bytes)
    return Delivery(QueueTransport(sink), settings, spool)


def _values(n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"run{i % 4}".encode(), f"event-{i:06d}".encode()) for i in range(start, start + n)]


def test_outage_spools_then_replays_everything_in_order(tmp_path: Path) -> None:
    sink = FlakySink()
    d = _delivery(tmp_path, sink)
    first, second, third = _values(100), _values(500, 100), _values(100, 600)
    for k, v in first:
        d.emit(k, v)
    assert d.flush(10)
    sink.up = False
    for k, v in second:
        d.emit(k, v)
    wait_until(lambda: d.counters().spooled >= 500, timeout=10, message="spooled during the outage")
    assert not d.flush(0.2)
    sink.up = True
    for k, v in third:
        d.emit(k, v)
    assert d.flush(10)
    c = d.counters()
    assert d.close(5)
    assert sink.got == first + second + third  # nothing lost, nothing doubled, the emit order kept
    assert (c.emitted, c.delivered, c.dropped) == (700, 700, 0)
    assert 500 <= c.replayed <= 600  # the outage's records (and maybe those behind them) came off the disk
    assert read_all(tmp_path) == []


def test_close_while_down_leaves_everything_for_the_next_process(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.up = False
    d = _delivery(tmp_path, sink, close_timeout_s=0.5)
    recs = _values(300)
    for k, v in recs:
        d.emit(k, v)
    assert d.close() is False
    assert read_all(tmp_path) == recs

    sink2 = FlakySink()
    d2 = _delivery(tmp_path, sink2)
    more = _values(50, 300)
    for k, v in more:
        d2.emit(k, v)
    assert d2.flush(10)
    assert d2.close(5)
    assert sink2.got == recs + more
    assert read_all(tmp_path) == []


def test_spool_disabled_or_full_drops_and_counts(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.up = False
    settings = DeliverySettings(spool_dir=tmp_path, poll_interval_s=0.005, close_timeout_s=0.2)
    d = Delivery(QueueTransport(sink), settings, None)
    for k, v in _values(20):
        d.emit(k, v)
    d.close()
    c = d.counters()
    assert (c.emitted, c.delivered, c.dropped) == (20, 0, 20)


def test_queue_hard_cap_drops_at_emit_without_blocking(tmp_path: Path) -> None:
    gate = threading.Event()

    def slow_sink(key: bytes, value: bytes) -> None:
        gate.wait(10)

    settings = DeliverySettings(spool_dir=tmp_path, queue_max=10, poll_interval_s=0.005, spool_enabled=False)
    d = Delivery(QueueTransport(slow_sink, max_pending=1), settings, None)
    d.emit(b"k", b"first")
    wait_until(lambda: d.counters().queued == 0, timeout=5, message="worker took the first record")
    for i in range(30):
        d.emit(b"k", b"v%d" % i)
    c = d.counters()
    assert c.emitted == 31 and c.dropped >= 20 - 1  # at most queue_max + the in-flight one were kept
    gate.set()
    d.close(5)


class StuckTransport(QueueTransport):
    """Never delivers (a broker that is down); on purge reports the records newest first."""

    def __init__(self) -> None:
        super().__init__(lambda k, v: None)
        self._healthy = True

    def poll(self, timeout: float) -> None:
        if timeout > 0:
            self._wake.wait(timeout)

    def purge(self) -> None:
        from tripwire.producers.transport import DeliveryFailure

        held = list(self._pending)
        self._pending.clear()
        for token, key, value in reversed(held):
            self._on_delivery(token, key, value, DeliveryFailure(reason="purged", purged=True))


def test_purged_records_go_back_to_the_spool_in_produce_order(tmp_path: Path) -> None:
    settings = DeliverySettings(spool_dir=tmp_path, segment_bytes=2048, poll_interval_s=0.005, close_timeout_s=0.3)
    spool = Spool(tmp_path, max_bytes=settings.spool_max_bytes, segment_bytes=settings.segment_bytes)
    d = Delivery(StuckTransport(), settings, spool)
    recs = _values(40)
    for k, v in recs:
        d.emit(k, v)
    wait_until(lambda: d.counters().pending == 40, timeout=5, message="handed to the transport")
    assert d.close() is False
    assert read_all(tmp_path) == recs


class GatedSink(FlakySink):
    """A destination so slow the worker cannot keep up: each call waits for the gate (at most
    ``patience`` seconds, then fails like a timed-out broker)."""

    def __init__(self, patience: float = 10.0) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.patience = patience

    def __call__(self, key: bytes, value: bytes) -> None:
        if not self.gate.wait(self.patience):
            raise TimeoutError("destination too slow")
        super().__call__(key, value)


def test_full_queue_spills_to_disk_in_order_instead_of_dropping(tmp_path: Path) -> None:
    sink = GatedSink()
    d = _delivery(tmp_path, sink, queue_max=20)
    recs = _values(600)
    for k, v in recs:  # never blocks: the queue holds 20, the rest goes to the overflow lane
        d.emit(k, v)
    c = d.counters()
    assert c.dropped == 0 and c.spooled >= 500
    sink.gate.set()
    assert d.flush(20)
    c = d.counters()
    assert d.close(5)
    assert sink.got == recs
    assert (c.emitted, c.delivered, c.dropped) == (600, 600, 0)
    assert read_all(tmp_path) == []


def test_close_during_overflow_hands_everything_to_the_next_process_in_order(tmp_path: Path) -> None:
    sink = GatedSink(patience=0.1)
    d = _delivery(tmp_path, sink, queue_max=10, close_timeout_s=1.0)
    recs = _values(200)
    for k, v in recs:
        d.emit(k, v)
    assert d.counters().spooled > 0
    assert d.close() is False
    assert sink.got == []
    assert sorted(read_all(tmp_path)) == sorted(recs)  # all on disk (the order is checked by the replay)
    sink2 = FlakySink()
    d2 = _delivery(tmp_path, sink2)
    more = _values(30, 200)
    for k, v in more:
        d2.emit(k, v)
    assert d2.flush(10)
    assert d2.close(5)
    assert sink.got + sink2.got == recs + more  # across both processes: every record once, in order


class CheckingTransport(QueueTransport):
    """Records, at each hand-over, whether the record was already on disk (unmarked) in the spool."""

    def __init__(self, root: Path, sink: FlakySink) -> None:
        super().__init__(sink)
        self.root = root
        self.on_disk_at_produce: list[bool] = []

    def produce(self, key: bytes, value: bytes, token: object) -> None:
        self.on_disk_at_produce.append((key, value) in read_all(self.root))
        super().produce(key, value, token)


def test_durable_handoff_writes_each_record_before_the_transport_gets_it(tmp_path: Path) -> None:
    sink = FlakySink()
    settings = DeliverySettings(spool_dir=tmp_path, poll_interval_s=0.005)
    assert (settings.handoff, settings.fsync) == ("durable", "batch")
    spool = Spool(tmp_path, max_bytes=settings.spool_max_bytes, segment_bytes=settings.segment_bytes)
    transport = CheckingTransport(tmp_path, sink)
    d = Delivery(transport, settings, spool)
    recs = _values(200)
    for k, v in recs:
        d.emit(k, v)
    assert d.flush(10)
    assert transport.on_disk_at_produce == [True] * 200
    assert read_all(tmp_path) == []  # every record marked settled on its ack
    c = d.counters()
    assert (c.logged, c.delivered, c.spooled, c.replayed) == (200, 200, 0, 0)
    assert d.close(5)
    assert sink.got == recs
    assert [p.name for p in spool.dir.glob("seg-*")] == []


def test_memory_handoff_logs_nothing(tmp_path: Path) -> None:
    sink = FlakySink()
    settings = DeliverySettings(spool_dir=tmp_path, poll_interval_s=0.005, handoff="memory")
    spool = Spool(tmp_path, max_bytes=settings.spool_max_bytes, segment_bytes=settings.segment_bytes)
    transport = CheckingTransport(tmp_path, sink)
    d = Delivery(transport, settings, spool)
    for k, v in _values(50):
        d.emit(k, v)
    assert d.flush(10)
    assert transport.on_disk_at_produce == [False] * 50 and d.counters().logged == 0
    assert d.close(5)


class AckSomeTransport(QueueTransport):
    """Acknowledges the first ``n`` records it gets; the rest stay in flight forever."""

    def __init__(self, sink: FlakySink, n: int) -> None:
        super().__init__(sink)
        self.n = n
        self.held: list[tuple[bytes, bytes]] = []

    def produce(self, key: bytes, value: bytes, token: object) -> None:
        if self.n > 0:
            self.n -= 1
            super().produce(key, value, token)
        else:
            self.held.append((key, value))

    def pending(self) -> int:
        return super().pending() + len(self.held)


def test_a_process_that_dies_leaves_exactly_the_unacknowledged_records_to_the_next(tmp_path: Path) -> None:
    sink = FlakySink()
    d = _delivery(tmp_path, sink)
    d._transport = transport = AckSomeTransport(sink, 25)
    transport.start(d._on_delivery)
    recs = _values(40)
    for k, v in recs:
        d.emit(k, v)
    wait_until(lambda: d.counters().delivered == 25 and len(transport.held) == 15, timeout=10, message="25 acked")
    wait_until(lambda: read_all(tmp_path) == recs[25:], timeout=10, message="the 25 acks marked")
    # the process dies: the worker stops where it is, the spool's descriptors close, nothing is finished
    d._stop.set()
    d._worker.join(5)
    d._spool.abandon()

    sink2 = FlakySink()
    d2 = _delivery(tmp_path, sink2)
    assert d2.flush(10)
    assert sink2.got == recs[25:]  # what was in flight is sent again; nothing acknowledged is
    assert d2.counters().replayed == 15
    assert d2.close(5)
    assert read_all(tmp_path) == []


def test_a_forked_child_restarts_delivery_and_sends_only_its_own_records(tmp_path: Path) -> None:
    import os

    out = tmp_path / "got"
    parent = os.getpid()
    gate = threading.Event()

    def sink(key: bytes, value: bytes) -> None:
        if os.getpid() == parent:
            gate.wait(10)  # the parent's records are held: queued or in flight at the fork
        with open(out, "ab") as f:
            f.write(b"%d %s\n" % (os.getpid(), value))

    settings = DeliverySettings(spool_dir=tmp_path / "spool", poll_interval_s=0.005)
    spool = Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes, segment_bytes=settings.segment_bytes)
    d = Delivery(QueueTransport(sink), settings, spool)
    for k, v in _values(10):
        d.emit(k, v)
    wait_until(lambda: d.counters().pending >= 1, timeout=5, message="the parent's records in flight")
    pid = os.fork()
    if pid == 0:  # the child: same Delivery object, restarted by the at-fork hook
        code = 1
        try:
            for k, v in _values(5, 100):
                d.emit(k, v)
            code = 0 if d.flush(10) and d.close(5) and d.counters().delivered == 5 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child_lines = out.read_bytes().splitlines()
    assert child_lines == [b"%d %s" % (pid, v) for _, v in _values(5, 100)]
    gate.set()
    assert d.flush(10)
    assert d.close(5)
    lines = out.read_bytes().splitlines()
    assert lines[5:] == [b"%d %s" % (parent, v) for _, v in _values(10)]
    assert read_all(settings.spool_dir) == []


def test_a_full_log_hands_records_over_from_memory_in_order(tmp_path: Path) -> None:
    sink = FlakySink()
    settings = DeliverySettings(spool_dir=tmp_path, poll_interval_s=0.005, spool_max_bytes=2048, segment_bytes=1024)
    spool = Spool(tmp_path, max_bytes=settings.spool_max_bytes, segment_bytes=settings.segment_bytes)
    d = Delivery(QueueTransport(sink), settings, spool)
    recs = _values(300)  # far more than 2 KiB: most cannot be logged
    for k, v in recs:
        d.emit(k, v)
    assert d.flush(10)
    c = d.counters()
    assert d.close(5)
    assert sink.got == recs  # nothing dropped, the emit order kept
    assert 0 < c.logged < 300 and c.dropped == 0


def test_has_room_and_wait_accepted_for_servers(tmp_path: Path) -> None:
    """What the OTLP receiver asks before answering a request: room now (queue, else the overflow spool),
    and, after emitting, that the worker took the records (handed over or written to the spool)."""
    sink = FlakySink()
    d = Delivery(QueueTransport(sink), DeliverySettings(spool_enabled=False, queue_max=3, poll_interval_s=0.005))
    try:
        assert d.has_room(3) and not d.has_room(4)  # no spool: only the queue counts
        for k, v in _values(3):
            d.emit(k, v)
        assert d.wait_accepted(5.0)
        assert d.flush(5.0) and sink.got == _values(3)
    finally:
        d.close(2)
    assert not d.has_room(1)  # closed
    spooled = _delivery(tmp_path, FlakySink(), queue_max=2, spool_max_bytes=4096)
    try:
        assert spooled.has_room(10, 1000)  # beyond the queue: the overflow spool has room
        assert not spooled.has_room(10, 8192)  # more bytes than the spool holds
    finally:
        spooled.close(2)
