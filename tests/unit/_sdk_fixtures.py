"""An in-process tracer whose events are decoded into a list (no broker needed)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tripwire.producers import Tracer, TracerConfig
from tripwire.schemas import decode


class Collected:
    def __init__(self) -> None:
        self.raw: list[tuple[bytes, bytes]] = []
        self.lock = threading.Lock()

    def sink(self, key: bytes, value: bytes) -> None:
        with self.lock:
            self.raw.append((key, value))

    @property
    def events(self) -> list[Any]:
        return [decode(v) for _, v in self.raw]

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


def make_tracer(tmp_path: Path, **cfg: Any) -> tuple[Tracer, Collected]:
    got = Collected()
    delivery = {"spool_dir": tmp_path / "spool", **cfg.pop("delivery", {})}
    agent = {"name": "refund-assistant", **cfg.pop("agent", {})}
    kw = {k: cfg.pop(k) for k in ("guard", "approver", "redactor") if k in cfg}
    tracer = Tracer.in_process(got.sink, TracerConfig(agent=agent, delivery=delivery, **cfg), **kw)
    return tracer, got
