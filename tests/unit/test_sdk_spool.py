"""The on-disk spool: order, CRC, torn tails, size cap, prepend, ownership."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripwire.producers.errors import SpoolError
from tripwire.producers.spool import MAGIC, Spool, decode_segment, encode_record, read_all

pytestmark = pytest.mark.unit


def _recs(n: int, tag: str = "r") -> list[tuple[bytes, bytes]]:
    return [(f"run-{i % 3}".encode(), f"{tag}{i}".encode() * 10) for i in range(n)]


def test_append_then_checkout_in_order_across_segments(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=512)
    recs = _recs(100)
    assert all(s.append(k, v) for k, v in recs)
    assert len(s.segment_ids()) > 3
    out = []
    while (got := s.checkout()) is not None:
        seg_id, records = got
        out.extend(records)
        s.delete(seg_id)
    assert out == recs
    assert s.is_empty() and s.total_bytes == 0
    s.close()


def test_survives_reopen_and_prepend_goes_first(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    for k, v in _recs(10, "new"):
        s.append(k, v)
    s.close()
    s2 = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    s2.prepend(_recs(3, "old"))
    s2.append(b"k", b"newest")
    s2.close()
    assert read_all(tmp_path) == _recs(3, "old") + _recs(10, "new") + [(b"k", b"newest")]


def test_corrupt_record_and_torn_tail_are_skipped_and_counted(tmp_path: Path) -> None:
    good = [encode_record(b"k", f"v{i}".encode()) for i in range(4)]
    bad = bytearray(good[1])
    bad[-1] ^= 0xFF  # flip a payload byte: CRC mismatch
    data = MAGIC + good[0] + bytes(bad) + good[2] + good[3][:5]  # torn tail
    records, skipped = decode_segment(data)
    assert records == [(b"k", b"v0"), (b"k", b"v2")]
    assert skipped == 2
    (tmp_path / "slot-0").mkdir()
    (tmp_path / "slot-0" / "seg-0000000999999999.twsp").write_bytes(data)
    s = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    _, recs = s.checkout()
    assert recs == [(b"k", b"v0"), (b"k", b"v2")] and s.stats.corrupt == 2
    s.close()


def test_size_cap_refuses(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=2048, segment_bytes=1024)
    accepted = sum(s.append(b"k", b"x" * 100) for _ in range(50))
    assert accepted == s.stats.appended and s.stats.refused == 50 - accepted
    assert 0 < accepted < 50 and s.total_bytes <= 2048
    s.close()


def test_one_owner_per_slot_and_a_restart_takes_its_slot_back(tmp_path: Path) -> None:
    a = Spool(tmp_path, max_bytes=4096, segment_bytes=1024)
    b = Spool(tmp_path, max_bytes=4096, segment_bytes=1024)  # a second tracer on the same root
    assert (a.dir.name, b.dir.name) == ("slot-0", "slot-1")
    a.append(b"k", b"left-in-slot-0")
    a.close()
    c = Spool(tmp_path, max_bytes=4096, segment_bytes=1024)
    assert c.dir.name == "slot-0"
    assert c.checkout()[1] == [(b"k", b"left-in-slot-0")]
    b.close()
    c.close()


def test_all_slots_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tripwire.producers.spool as spool_mod

    monkeypatch.setattr(spool_mod, "MAX_SLOTS", 2)
    held = [Spool(tmp_path, max_bytes=4096, segment_bytes=1024) for _ in range(2)]
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path, max_bytes=4096, segment_bytes=1024)
    for s in held:
        s.close()


def test_random_bytes_never_crash_the_reader() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    good = MAGIC + encode_record(b"k", b"v")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200), st.integers(min_value=0, max_value=len(good)))
    def check(noise: bytes, cut: int) -> None:
        for data in (noise, MAGIC + noise, good[:cut] + noise, good + noise):
            records, bad = decode_segment(data)
            assert bad >= 0
            assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in records)
        assert decode_segment(good + encode_record(b"k", b"v")) == ([(b"k", b"v")] * 2, 0)

    check()


def test_total_bytes_tracks_the_files_on_disk(tmp_path: Path) -> None:
    def on_disk() -> int:
        return sum(p.stat().st_size for p in tmp_path.rglob("seg-*.twsp"))

    s = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    for k, v in _recs(30):
        s.append(k, v)
    s.flush()
    assert s.total_bytes == on_disk() > 0
    s.prepend(_recs(3, "old"))
    seg_id, _ = s.checkout()
    s.delete(seg_id)
    s.flush()
    assert s.total_bytes == on_disk()
    other = Spool(tmp_path / "other", max_bytes=1 << 20, segment_bytes=300)
    other.append(b"k", b"v" * 50)
    assert s.adopt(other) == 1 and other.total_bytes == 0
    s.flush()
    assert s.total_bytes == on_disk()
    while (got := s.checkout()) is not None:
        s.delete(got[0])
    assert s.total_bytes == 0 == on_disk()
    s.close()
    other.close()


def test_marked_records_are_skipped_by_checkout_read_all_and_the_next_process(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 16)
    recs = _recs(10)
    for k, v in recs:
        s.append(k, v)
    s.flush()
    seg_id = s.segment_ids()[0]
    s.mark(seg_id, [0, 3])
    s.mark(seg_id, [9])
    keep = [r for i, r in enumerate(recs) if i not in (0, 3, 9)]
    assert read_all(tmp_path) == keep
    s.close()
    s2 = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 16)
    got = s2.checkout_indexed()
    assert got is not None and [i for i, _, _ in got[1]] == [1, 2, 4, 5, 6, 7, 8]
    assert [(k, v) for _, k, v in got[1]] == keep
    s2.delete(got[0])
    assert sorted(p.name for p in s2.dir.iterdir()) == ["LOCK"]  # the .ack file goes with its segment
    s2.close()


def test_live_segments_are_not_replayed_by_their_writer_but_by_the_next_process(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 16)
    positions = [s.append_live(k, v) for k, v in _recs(5, "live")]
    seg = positions[0][0]
    assert positions == [(seg, i) for i in range(5)]
    assert not s.has_unread() and s.checkout() is None and s.is_empty()
    s.append(b"k", b"outage")  # a replayable record seals the live segment and opens another one
    assert s.has_unread() and len(s.segment_ids()) == 2
    assert s.checkout() == (s.segment_ids()[1], [(b"k", b"outage")])
    s.mark(seg, [0, 1, 2])
    s.close()
    s2 = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 16)
    assert s2.checkout() == (seg, _recs(5, "live")[3:])
    s2.close()


def test_appends_reach_the_file_in_one_write_per_flush_and_adopt_moves_marks(tmp_path: Path) -> None:
    s = Spool(tmp_path / "a", max_bytes=1 << 20, segment_bytes=1 << 16)
    for k, v in _recs(4):
        s.append(k, v)
    path = s.dir / f"seg-{s.segment_ids()[0]:016d}.twsp"
    assert path.read_bytes() == b""  # gathered in memory until flush
    s.sync()
    assert decode_segment(path.read_bytes()) == (_recs(4), 0)
    s.mark(s.segment_ids()[0], [1])
    t = Spool(tmp_path / "b", max_bytes=1 << 20, segment_bytes=1 << 16)
    assert t.adopt(s) == 1
    assert read_all(tmp_path / "b") == [_recs(4)[0], *_recs(4)[2:]]
    s.close()
    t.close()


def test_abandon_writes_nothing_of_what_was_pending(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 16)
    s.append_live(b"k", b"written")
    s.flush()
    s.append_live(b"k", b"only in the parent's memory")
    path = s.dir / f"seg-{s.segment_ids()[0]:016d}.twsp"
    s.abandon()  # what a forked child does with its copy of the parent's spool
    assert decode_segment(path.read_bytes()) == ([(b"k", b"written")], 0)
