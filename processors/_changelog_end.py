"""Where a changelog partition's committed records really end (for faust's recovery, fix 9).

faust's recovery reads a changelog partition until it has seen the record at ``highwater``, which
it takes as the end offset minus one. Under exactly-once every transaction ends with a commit
marker, so that offset is usually the last transaction's marker: a control record that the
``read_committed`` consumer never delivers. faust then waits for two 5-s queue timeouts and checks
the consumer position (``Recovery._slurp_changelogs``, ``detect_aborted_tx``), about 10 s at every
start, however little there is to replay.

:func:`last_records` asks the broker instead: a short-lived ``read_committed`` consumer of its own
(no group, nothing committed) reads backwards from the end in growing windows until it meets a
committed data record, never below ``floor`` (the offset the local store already reflects, so a
store that is up to date costs one small fetch per partition). Its position after a fetch is exact
(aiokafka advances it past control batches), so "no data record in ``[lo, end)``" is a fact about
the log, not a timeout. Any failure or timeout returns None for the partition: the caller keeps
faust's own highwater and its slower wait, never a guess.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

FIRST_WINDOW = 64  # offsets read back from the end at first; x16 per round while none is data


async def last_records(
    make_consumer: Any, spans: dict[Any, tuple[int | None, int]], timeout_s: float = 10.0
) -> dict[Any, int | None]:
    """For each partition ``tp: (first, end)``: the offset of the last committed data record in
    ``[first, end)``, else ``first - 1``; None when it could not be told in time. ``first`` None
    means the log's start.

    ``make_consumer()`` returns an unstarted ``aiokafka.AIOKafkaConsumer`` (``read_committed``,
    no group); the partitions are anything with ``topic`` and ``partition`` (faust's ``TP``)."""
    from aiokafka import TopicPartition

    theirs = {TopicPartition(tp.topic, tp.partition): tp for tp in spans}
    found = await _last_records(make_consumer, {k: spans[tp] for k, tp in theirs.items()}, timeout_s)
    return {theirs[k]: v for k, v in found.items()}


async def _last_records(
    make_consumer: Any, spans: dict[Any, tuple[int | None, int]], timeout_s: float
) -> dict[Any, int | None]:
    out: dict[Any, int | None] = dict.fromkeys(spans)
    deadline = time.monotonic() + timeout_s
    try:
        consumer = make_consumer()
    except Exception as e:
        log.warning("no changelog-end consumer, recovery waits for the ends error=%s: %s", type(e).__name__, e)
        return out
    try:
        await asyncio.wait_for(consumer.start(), timeout_s)
        starts = {}
        unknown = [tp for tp, (first, _) in spans.items() if first is None]
        if unknown:
            starts = await asyncio.wait_for(consumer.beginning_offsets(unknown), timeout_s)
        firsts = {tp: first if first is not None else int(starts[tp]) for tp, (first, _) in spans.items()}
        todo = {tp: end for tp, (_, end) in spans.items() if end > firsts[tp]}
        for tp in spans.keys() - todo.keys():
            out[tp] = firsts[tp] - 1
        if todo:
            consumer.assign(list(todo))
        window = FIRST_WINDOW
        while todo:
            los = {tp: max(firsts[tp], hi - window) for tp, hi in todo.items()}
            found = await _read_windows(consumer, los, todo, deadline)
            for tp in list(todo):
                last = found[tp]
                if last is None and los[tp] > firsts[tp]:
                    todo[tp] = los[tp]  # read the next window down
                    continue
                out[tp] = last if last is not None else firsts[tp] - 1
                del todo[tp]
            window *= 16
    except Exception as e:  # a timeout, a broker error: faust's own (slower) end detection stays
        log.warning("could not read the changelog ends, recovery waits for them error=%s: %s", type(e).__name__, e)
        out = dict.fromkeys(spans)
    finally:
        try:
            await asyncio.wait_for(consumer.stop(), 5.0)
        except Exception as e:
            log.warning("closing the changelog-end consumer failed error=%s: %s", type(e).__name__, e)
    return out


async def _read_windows(
    consumer: Any, los: dict[Any, int], his: dict[Any, int], deadline: float
) -> dict[Any, int | None]:
    """The last data record's offset in ``[los[tp], his[tp])`` per partition (None: none)."""
    found: dict[Any, int | None] = dict.fromkeys(los)
    reading = set(los)
    consumer.resume(*reading)
    for tp, lo in los.items():
        consumer.seek(tp, lo)
    while reading:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"changelog ends not read within the deadline: {sorted(map(str, reading))}")
        batch = await consumer.getmany(*reading, timeout_ms=int(min(remaining, 0.2) * 1000))
        for tp, records in batch.items():
            hi = his[tp]
            for r in records:
                if r.offset < hi and (found[tp] is None or r.offset > found[tp]):  # type: ignore[operator]
                    found[tp] = r.offset
        for tp in list(reading):
            if await consumer.position(tp) >= his[tp]:
                reading.discard(tp)
                consumer.pause(tp)
    return found
