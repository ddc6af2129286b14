"""A restarted OTLP receiver continues a run's numbering (``producers/otlp/_seq_store.py``): the
processors deduplicate a run's events by ``(run_id, seq)``, so a renumbered span would be dropped from
the run's summary, and a span replayed after the restart counted twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.test_otlp_mapping import AGENT, CHAT, TOOL, mapper, span
from tripwire.producers.otlp import Identity, SpanMapper
from tripwire.producers.otlp._seq_store import SeqStore


def with_store(path: Path) -> SpanMapper:
    m = mapper()
    m.seq_store = SeqStore(path)
    return m


def seqs(events: list[Any]) -> list[tuple[str, str, int]]:
    return [(type(e).__name__, e.event_id, e.seq) for e in events]


def first_and_rest() -> tuple[list[Any], list[Any]]:
    """A run's first two calls, exported before the restart; two more calls and the root after it."""
    before = [span(2, 1, 10, 20, **CHAT), span(3, 1, 21, 30, **TOOL)]
    after = [span(4, 1, 31, 40, **CHAT), span(5, 1, 41, 50, **TOOL), span(1, None, 0, 100, **AGENT)]
    return before, after


def calls(events: list[Any]) -> list[int]:
    return [e.seq for e in events if type(e).__name__ in ("ModelCall", "ToolCall")]


def test_a_restarted_receiver_continues_the_numbering_and_replays_keep_their_seq(tmp_path: Path) -> None:
    before, after = first_and_rest()
    first = with_store(tmp_path / "seqs.sqlite3")
    sent = first.map_spans(before, Identity())[0]
    assert calls(sent) == [1, 2]
    first.seq_store.close()  # type: ignore[union-attr]

    restarted = with_store(tmp_path / "seqs.sqlite3")  # a new process: empty caches, the same file
    rest = restarted.map_spans(after, Identity())[0]
    assert calls(rest) == [3, 4]
    finished = next(e for e in rest if type(e).__name__ == "RunFinished")
    assert (finished.seq, finished.last_seq) == (5, 5)
    replayed = restarted.map_spans(before, Identity())[0]  # the exporter retries what it had sent
    assert seqs(replayed) == seqs(sent)
    # every seq 0..last_seq once: the processors count each span once and close the run complete
    assert sorted(e.seq for e in [*sent, *rest]) == [0, 1, 2, 3, 4, 5]


def test_without_the_store_a_restart_renumbers_the_run() -> None:
    """What the store prevents: the same exports through mappers without it."""
    before, after = first_and_rest()
    sent = mapper().map_spans(before, Identity())[0]
    restarted = mapper()
    rest = restarted.map_spans(after, Identity())[0]
    assert calls(rest) == [1, 2] == calls(sent)  # new spans reuse seen seqs: dropped as duplicates
    replayed = restarted.map_spans(before, Identity())[0]
    assert calls(replayed) == [4, 5]  # a replay gets new seqs: counted twice


def test_the_store_is_bounded_and_keeps_the_newest(tmp_path: Path) -> None:
    store = SeqStore(tmp_path / "s.sqlite3", max_rows=50)
    for i in range(1200):  # prunes every 1000 saves
        store.save({f"run-{i}": i}, {f"ev-{i}": i})
    counters, memo = store.rows()
    assert counters <= 250 and memo <= 250  # 50 kept at the prune, 200 saved since
    assert store.counter("run-1199") == 1199 and store.seq("ev-1199") == 1199
    assert store.counter("run-0") is None and store.seq("ev-0") is None
