"""Prometheus metrics of the notifier (served by ``prometheus_client``, like the processor workers'
``processors/metrics.py``): deliveries, retries and dead letters by route, and how long a delivery took."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

# seconds from the first try to the outcome, retries and back-offs included
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass
class NotifierMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.delivered = Counter("tripwire_notify_delivered", "notifications delivered (2xx)", ["route"], registry=r)
        self.retried = Counter(
            "tripwire_notify_retried", "delivery attempts after the first (transient failures)", ["route"], registry=r
        )
        self.dead_lettered = Counter(
            "tripwire_notify_dead_lettered", "records dead-lettered after a failed delivery", ["route"], registry=r
        )
        self.latency = Histogram(
            "tripwire_notify_delivery_seconds", "time from the first try to the outcome of a delivery",
            ["route", "outcome"], buckets=LATENCY_BUCKETS, registry=r,
        )

    def serve(self, port: int) -> int:
        """Start the HTTP endpoint; returns the bound port (``0`` picks a free one)."""
        server, _ = start_http_server(port, registry=self.registry)
        return int(server.server_address[1])

    def record(self, route: str, *, ok: bool, attempts: int, seconds: float, records: int) -> None:
        """One finished delivery of a batch of ``records`` to ``route``."""
        if attempts > 1:
            self.retried.labels(route).inc(attempts - 1)
        if ok:
            self.delivered.labels(route).inc()
        else:
            self.dead_lettered.labels(route).inc(records)
        self.latency.labels(route, "delivered" if ok else "failed").observe(seconds)


__all__ = ["LATENCY_BUCKETS", "NotifierMetrics"]
