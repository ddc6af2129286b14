"""Prometheus metrics of a processor worker (served by ``prometheus_client``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


@dataclass
class ProcessorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events = Counter("tripwire_processor_events", "input messages handled", ["stage", "result"], registry=r)
        self.outputs = Counter("tripwire_processor_outputs", "records published", ["topic"], registry=r)
        self.alerts = Counter("tripwire_processor_alerts", "alerts published", ["kind", "status"], registry=r)
        self.dead_letters = Counter(
            "tripwire_processor_dead_letters", "messages sent to the DLQ", ["stage"], registry=r
        )
        self.events_per_second = Gauge(
            "tripwire_processor_events_per_second", "events handled per second (last interval)", registry=r
        )
        self.lag = Gauge(
            "tripwire_processor_lag", "messages behind the partition end", ["topic", "partition"], registry=r
        )
        self.flushed = Counter(
            "tripwire_processor_flushed_records",
            "records (outputs, forwards, changelog) sent at offset commits",
            registry=r,
        )
        self.state_keys = Gauge(
            "tripwire_processor_state_keys",
            "keys of a stage with time-driven work pending (in its deadline index)",
            ["stage"],
            registry=r,
        )
        self._last_total = 0.0
        self._last_at = time.monotonic()

    def serve(self, port: int) -> int:
        """Start the HTTP endpoint; returns the bound port (``0`` picks a free one)."""
        server, _ = start_http_server(port, registry=self.registry)
        return int(server.server_address[1])

    def total_events(self) -> float:
        return sum(s.value for m in self.events.collect() for s in m.samples if s.name.endswith("_total"))

    def update_rate(self) -> None:
        now, total = time.monotonic(), self.total_events()
        if now > self._last_at:
            self.events_per_second.set((total - self._last_total) / (now - self._last_at))
        self._last_total, self._last_at = total, now

    def record_alerts(self, alerts: list[Any]) -> None:
        for a in alerts:
            self.alerts.labels(a.kind, a.status).inc()
