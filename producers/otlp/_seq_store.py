"""The OTLP receiver's run counters and seq memo, kept on disk so a restart does not renumber a run.

The mapper numbers a run's events from a per-run counter and remembers each event's ``seq`` by its
event id, so a retried span gets the same ``seq`` (``mapping``). In memory only, a receiver restarted
in the middle of a trace would number that run's later spans from 1 again, and the processors, which
deduplicate a run's events by ``(run_id, seq)``, would drop those that reuse a seen ``seq`` and count a
span replayed after the restart twice. :class:`SeqStore` keeps both in a SQLite file next to the
receiver's spool: the mapper reads it on a miss of its in-memory caches and writes what a request
assigned in one transaction before the request's events are handed to the producer, so an event that
reached the topic always has its counter and memo on disk (a crash in between only skips numbers:
the processors report them as missing seqs, nothing is counted twice).

Bounded: the rows not touched in the last ``max_rows`` assignments are pruned. WAL with
``synchronous=NORMAL``: durable across a process crash (the failure this guards against), one fsync
per checkpoint rather than per request.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

_PRUNE_EVERY = 1000  # saves between prunes


class SeqStore:
    """Thread-safe (one connection under a lock; the mapper also calls it under its own lock)."""

    def __init__(self, path: str | Path, max_rows: int = 1_000_000) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS counters (run_id TEXT PRIMARY KEY, n INTEGER NOT NULL, t INTEGER)")
        db.execute("CREATE TABLE IF NOT EXISTS memo (event_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, t INTEGER)")
        db.execute("CREATE INDEX IF NOT EXISTS counters_t ON counters (t)")
        db.execute("CREATE INDEX IF NOT EXISTS memo_t ON memo (t)")
        newest = [db.execute(f"SELECT max(t) FROM {table}").fetchone()[0] for table in ("counters", "memo")]
        self._t = max((int(t) for t in newest if t is not None), default=0)
        self._saves = 0

    def counter(self, run_id: str) -> int | None:
        """The last number given in run ``run_id``, if any."""
        with self._lock:
            row = self._db.execute("SELECT n FROM counters WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else int(row[0])

    def seq(self, event_id: str) -> int | None:
        """The ``seq`` given to ``event_id``, if any."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM memo WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else int(row[0])

    def save(self, counters: dict[str, int], memo: dict[str, int]) -> None:
        """Write what a request assigned, in one transaction."""
        if not counters and not memo:
            return
        with self._lock:
            self._t += 1
            t = self._t
            db = self._db
            db.execute("BEGIN")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO counters (run_id, n, t) VALUES (?, ?, ?)",
                    [(r, n, t) for r, n in counters.items()],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO memo (event_id, seq, t) VALUES (?, ?, ?)",
                    [(e, s, t) for e, s in memo.items()],
                )
                self._saves += 1
                if self._saves % _PRUNE_EVERY == 0:
                    self._prune()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _prune(self) -> None:
        db = self._db
        for table in ("counters", "memo"):
            row = db.execute(f"SELECT t FROM {table} ORDER BY t DESC LIMIT 1 OFFSET ?", (self.max_rows,)).fetchone()
            if row is not None:
                db.execute(f"DELETE FROM {table} WHERE t <= ?", (row[0],))

    def rows(self) -> tuple[int, int]:
        """(counters, memo) rows stored."""
        with self._lock:
            return (
                int(self._db.execute("SELECT count() FROM counters").fetchone()[0]),
                int(self._db.execute("SELECT count() FROM memo").fetchone()[0]),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
