"""Where encoded events go: the :class:`Transport` interface, Kafka, and an in-process queue.

A transport is driven by the delivery worker thread only. ``produce`` hands over one record (raising
``BufferError`` when its own queue is full); ``poll`` serves delivery reports through the
``on_delivery(token, key, value, error)`` callback given to ``start``. ``error`` is None on success.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tripwire.core.errors import ConfigError
from tripwire.core.ratelimit import RateLimitedLog
from tripwire.producers.config import KafkaProducerSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """Why a record was not delivered. ``permanent``: retrying the same bytes cannot succeed."""

    reason: str
    purged: bool = False
    permanent: bool = False


DeliveryCallback = Callable[[Any, bytes, bytes, "DeliveryFailure | None"], None]
"""``(token, key, value, failure)``; key and value are only meaningful when ``failure`` is set."""


class Transport(Protocol):
    """What the delivery worker needs from a destination."""

    def start(self, on_delivery: DeliveryCallback) -> None: ...

    def produce(self, key: bytes, value: bytes, token: Any) -> None:
        """Hand over one record; raise ``BufferError`` if it cannot take more right now."""

    def poll(self, timeout: float) -> None:
        """Serve delivery reports, waiting at most ``timeout`` seconds."""

    def pending(self) -> int:
        """Records handed over whose delivery report has not been served yet."""

    @property
    def healthy(self) -> bool:
        """False while the destination is known to be unreachable."""

    def probe(self, timeout: float) -> bool:
        """Check reachability now (called while unhealthy and idle); updates ``healthy``."""

    def purge(self) -> None:
        """Fail every pending record (reports with ``purged=True`` are served by the next poll)."""

    def close(self) -> None: ...

    def restart_after_fork(self, on_delivery: DeliveryCallback) -> None:
        """In a forked child: forget the parent's client (without touching it) and start a fresh one."""


# -- Kafka -----------------------------------------------------------------------------------------
_ABANDONED: list[Any] = []  # parents' Kafka clients in a forked child
_PERMANENT = {"MSG_SIZE_TOO_LARGE", "INVALID_MSG", "INVALID_RECORD", "CORRUPT_MESSAGE", "_MSG_TIMED_OUT_NEVER"}


class KafkaTransport:
    """confluent-kafka producer: idempotent, ``acks=all``, compressed, lingering, keyed by run_id.

    ``message.timeout.ms`` is infinite: librdkafka keeps retrying through an outage, in order, and the
    idempotent producer lets the broker discard retried duplicates. What is still pending at close is
    purged and re-spooled by the caller.
    """

    def __init__(self, settings: KafkaProducerSettings) -> None:
        self.settings = settings
        self.topic = settings.topic
        self._producer: Any = None
        self._healthy = True
        self._log = RateLimitedLog(logger, interval_s=10.0)

    def librdkafka_config(self) -> dict[str, Any]:
        s = self.settings
        conf: dict[str, Any] = {
            "bootstrap.servers": s.bootstrap,
            "client.id": s.client_id,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": s.compression,
            "linger.ms": s.linger_ms,
            "batch.size": s.batch_size,
            "message.timeout.ms": 0,  # infinite: never drop on our own; close() purges and re-spools
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "socket.keepalive.enable": True,
            "reconnect.backoff.max.ms": 1000,
            **s.confluent_conf(),
        }
        conf.update(s.extra)
        return conf

    def start(self, on_delivery: DeliveryCallback) -> None:
        from confluent_kafka import KafkaException, Producer

        conf = self.librdkafka_config()
        conf["error_cb"] = self._on_error
        self._on_delivery = on_delivery
        try:
            self._producer = Producer(conf)
        except KafkaException as e:
            raise ConfigError(f"the Kafka producer rejected its configuration (kafka.extra?): {e}") from e

    def _on_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        code = err.code()
        if code in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            if code == KafkaError._ALL_BROKERS_DOWN:
                self._healthy = False
            self._log.warning("kafka.unreachable", "kafka unreachable error=%s", err.name())
        elif err.fatal():
            self._healthy = False
            self._log.error("kafka.fatal", "kafka producer fatal error=%s", err.str())
        else:
            self._log.warning("kafka.error." + err.name(), "kafka producer error=%s", err.str())

    def _report(self, token: Any) -> Callable[[Any, Any], None]:
        def report(err: Any, msg: Any) -> None:
            if err is None:
                self._healthy = True
                self._on_delivery(token, b"", b"", None)  # the bytes are only needed when it failed
                return
            name = err.name()
            failure = DeliveryFailure(
                reason=name,
                purged=name in ("_PURGE_QUEUE", "_PURGE_INFLIGHT"),
                permanent=name in _PERMANENT,
            )
            self._on_delivery(token, msg.key(), msg.value(), failure)

        return report

    def produce(self, key: bytes, value: bytes, token: Any) -> None:
        self._producer.produce(self.topic, value, key, on_delivery=self._report(token))

    def poll(self, timeout: float) -> None:
        self._producer.poll(timeout)

    def pending(self) -> int:
        return len(self._producer)

    @property
    def healthy(self) -> bool:
        return self._healthy

    def probe(self, timeout: float) -> bool:
        try:
            md = self._producer.list_topics(self.topic, timeout=timeout)
            ok = bool(md.brokers)
        except Exception:
            ok = False
        if ok:
            self._healthy = True
        return ok

    def purge(self) -> None:
        self._producer.purge(in_queue=True, in_flight=True, blocking=False)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.poll(0)
            self._producer = None

    def restart_after_fork(self, on_delivery: DeliveryCallback) -> None:
        # librdkafka is not fork-safe: the parent's client has no threads in the child, and destroying it
        # would wait for them. It is kept alive for the child's lifetime (never destroyed, never used).
        old = self._producer
        if old is not None:
            _ABANDONED.append(old)
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(old))  # not even destroyed at interpreter exit
        self._producer = None
        self._healthy = True
        self._log = RateLimitedLog(logger, interval_s=10.0)
        self.start(on_delivery)


# -- in-process ------------------------------------------------------------------------------------
class QueueTransport:
    """Delivers ``(key, value)`` to a callable sink in the worker thread: for the embedded demo and tests.

    A sink that raises makes the record fail (it goes to the spool and is replayed later), so an
    in-process consumer gets the same loss-free semantics as Kafka.
    """

    def __init__(self, sink: Callable[[bytes, bytes], None], *, max_pending: int = 100_000) -> None:
        self._sink = sink
        self._max_pending = max_pending
        self._pending: deque[tuple[Any, bytes, bytes]] = deque()
        self._healthy = True
        self._wake = threading.Event()

    def start(self, on_delivery: DeliveryCallback) -> None:
        self._on_delivery = on_delivery

    def produce(self, key: bytes, value: bytes, token: Any) -> None:
        if len(self._pending) >= self._max_pending:
            raise BufferError("queue transport full")
        self._pending.append((token, key, value))

    def poll(self, timeout: float) -> None:
        if not self._pending:
            if timeout > 0:
                self._wake.wait(timeout)
                self._wake.clear()
            return
        while self._pending:
            token, key, value = self._pending[0]
            try:
                self._sink(key, value)
            except Exception as e:
                self._healthy = False
                # it and everything behind it fail, in order (reported before they stop counting as pending)
                failed = list(self._pending)
                reason = type(e).__name__
                for i, (t, k, v) in enumerate(failed):
                    self._on_delivery(t, k, v, DeliveryFailure(reason=reason if i == 0 else "predecessor_failed"))
                self._pending.clear()
                return
            self._healthy = True
            self._on_delivery(token, key, value, None)
            self._pending.popleft()

    def pending(self) -> int:
        return len(self._pending)

    @property
    def healthy(self) -> bool:
        return self._healthy

    def probe(self, timeout: float) -> bool:
        self._healthy = True  # the next poll finds out
        return True

    def purge(self) -> None:
        purged = list(self._pending)
        self._pending.clear()
        for token, key, value in purged:
            self._on_delivery(token, key, value, DeliveryFailure(reason="purged", purged=True))

    def close(self) -> None:
        self._wake.set()

    def restart_after_fork(self, on_delivery: DeliveryCallback) -> None:
        self._pending = deque()  # the parent's records are the parent's
        self._healthy = True
        self._wake = threading.Event()
        self.start(on_delivery)


def build_transport(kind: str, kafka: KafkaProducerSettings) -> Transport:
    if kind == "kafka":
        return KafkaTransport(kafka)
    raise ValueError(f"transport {kind!r} needs a sink: pass QueueTransport(sink) to the Tracer")


__all__ = ["DeliveryCallback", "DeliveryFailure", "KafkaTransport", "QueueTransport", "Transport", "build_transport"]
