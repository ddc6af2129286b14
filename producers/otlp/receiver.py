"""The OTLP receiver's core, shared by the HTTP and gRPC front ends: decode, authenticate, map, hand
the events to the SDK's durable delivery, and acknowledge only once they are accepted.

The producer side is the SDK's own: :class:`~tripwire.producers.Delivery` (bounded queue, durable
hand-off log, disk spool, Kafka transport), the redactor built by ``Redactor.from_spec`` from the same
``redaction:`` config, the :class:`~tripwire.producers.CostCalculator` with the same price overrides, and
the contract's models and codec (events are validated models, framed per ``TRIPWIRE_SCHEMA_FRAMING``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tripwire.core.ratelimit import RateLimitedLog
from tripwire.producers._encode import EventEncoder
from tripwire.producers._framing import events_framing
from tripwire.producers.config import TracerConfig, load_config
from tripwire.producers.cost import CostCalculator, PriceOverrides, TokenUsage
from tripwire.producers.delivery import Delivery
from tripwire.producers.otlp._proto import decompress, encode_response, parse_request, raw_spans
from tripwire.producers.otlp._seq_store import SeqStore
from tripwire.producers.otlp.config import OtlpSettings, TokenAuth
from tripwire.producers.otlp.errors import Backpressure, OtlpError, RequestTooLarge, Throttled, Unauthenticated
from tripwire.producers.otlp.mapping import Identity, MappingOptions, SpanMapper
from tripwire.producers.otlp.mtls import ClientCertAuth
from tripwire.producers.spool import Spool
from tripwire.producers.transport import KafkaTransport, Transport
from tripwire.redaction import Redactor
from tripwire.schemas import EventBase

logger = logging.getLogger(__name__)
_ACCEPTED_MAX = 500_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass
class ReceiverCounters:
    requests: int = 0
    spans: int = 0
    events: int = 0
    rejected_spans: int = 0
    refused_requests: int = 0
    backpressure: int = 0  # requests answered 429/503 (gRPC RESOURCE_EXHAUSTED/UNAVAILABLE)
    throttled: int = 0  # of which 429 / RESOURCE_EXHAUSTED: no room in the queue and spool
    duplicates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {k: v for k, v in vars(self).items() if k != "lock"}


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class OtlpReceiver:
    """Thread-safe; one per process. ``close()`` flushes the delivery (what is left stays in the spool)."""

    def __init__(
        self,
        settings: OtlpSettings | None = None,
        tracer_config: TracerConfig | None = None,
        *,
        transport: Transport | None = None,
    ) -> None:
        self.settings = s = settings if settings is not None else OtlpSettings()
        if tracer_config is None:
            tracer_config = load_config(s.tracer_config) if s.tracer_config is not None else TracerConfig()
        self.tracer_config = cfg = tracer_config
        self.auth = TokenAuth.from_settings(s)
        self.cert_auth = ClientCertAuth.load(s.client_certs_file) if s.client_certs_file is not None else None
        spool = None
        if cfg.delivery.spool_enabled:
            spool = Spool(
                cfg.delivery.spool_dir, max_bytes=cfg.delivery.spool_max_bytes, segment_bytes=cfg.delivery.segment_bytes
            )
        # an acknowledgement waits for the worker's cycle: the receiver's worker polls more often than an agent's
        delivery = cfg.delivery.model_copy(update={"poll_interval_s": s.delivery_poll_interval_s})
        self.delivery = Delivery(transport if transport is not None else KafkaTransport(cfg.kafka), delivery, spool)
        # the SDK's compiled encoder and framing (TRIPWIRE_SCHEMA_FRAMING), byte-identical to the contract codec
        self.encoder = EventEncoder(framing=events_framing(cfg.schemas, cfg.kafka.topic))
        # with a spool, the run counters and seq memo are kept beside it: a restart does not renumber a run
        seq_store = SeqStore(Path(cfg.delivery.spool_dir) / "otlp-seqs.sqlite3") if spool is not None else None
        self.mapper = SpanMapper(
            MappingOptions(
                default_tenant=cfg.tenant,
                tenant_attribute=s.tenant_attribute,
                credential_attribute=s.credential_attribute,
                default_environment=cfg.environment,
                default_agent_version=cfg.agent_version,
                store_prompts=cfg.logging.store_prompts,
                log_tool_args=cfg.logging.log_tool_args == "redact_pii",
            ),
            Redactor.from_spec(cfg.redaction),
            CostCalculator(PriceOverrides.load(cfg.price_overrides) if cfg.price_overrides else None),
            seq_store,
        )
        # import and load the price table now, on this thread: a lazy first import on a server thread races
        # with the application's (openai checks sys.modules for a half-imported httpx2, which genai-prices uses)
        self.mapper.costs.compute("openai", "gpt-4o-mini", TokenUsage(input_tokens=1))
        self.counters = ReceiverCounters()
        self._accepted: OrderedDict[str, None] = OrderedDict()
        self._accepted_lock = threading.Lock()
        self._log = RateLimitedLog(logger, interval_s=10.0)

    def identify(self, authorization: str | None, peer_cert: bytes | None = None) -> Identity:
        """The request's identity: its verified client certificate when certificates are mapped to tenants
        (``client_certs_file``), else its bearer token (open when no tokens are configured)."""
        if self.cert_auth is not None:
            if peer_cert is None:
                raise Unauthenticated("a client certificate is required")
            return self.cert_auth.identify(peer_cert)
        return self.auth.identify(authorization)

    # -- the one export path -------------------------------------------------------------------
    def export(self, request: ExportTraceServiceRequest, identity: Identity) -> ExportTraceServiceResponse:
        """Map and hand over one request; raises :class:`Backpressure` when it cannot be accepted now."""
        spans, invalid, reasons = raw_spans(request)
        try:
            events, rejected, more = self.mapper.map_spans(spans, identity)
        except sqlite3.Error as e:  # the seq store (disk full, I/O error): nothing was handed over
            self.counters.add(backpressure=1)
            self._log.warning("seq_store", "otlp seq store write failed error=%s", type(e).__name__)
            retry = self.settings.retry_after_s
            raise Backpressure("the receiver's seq store cannot be written; retry later", retry) from e
        records: list[tuple[str, bytes, bytes]] = []
        size = dup = 0
        with self._accepted_lock:
            fresh = [ev for ev in events if ev.event_id not in self._accepted]
        dup = len(events) - len(fresh)
        for ev in fresh:
            try:
                value = self._encode(ev)
            except Exception as e:
                rejected += 1
                more.append(f"span {ev.span_id}: encode failed: {type(e).__name__}")
                continue
            size += len(value)
            records.append((ev.event_id, ev.run_id.encode(), value))
        retry = self.settings.retry_after_s
        if not self.delivery.has_room(len(records), size):
            self.counters.add(backpressure=1, throttled=1)
            raise Throttled("the producer's queue and spool are full; retry later", retry)
        dropped = self.delivery.counters().dropped
        for _, key, value in records:
            self.delivery.emit(key, value)
        if not self.delivery.wait_accepted(self.settings.ack_timeout_s):
            self.counters.add(backpressure=1)
            raise Backpressure("events not yet handed to the producer or the spool; retry later", retry)
        if self.delivery.counters().dropped > dropped:
            self.counters.add(backpressure=1)
            raise Backpressure("the producer dropped events (spool full); retry later", retry)
        self._remember([eid for eid, _, _ in records])
        bad = invalid + rejected
        self.counters.add(
            requests=1, spans=len(spans) + invalid, events=len(records), rejected_spans=bad, duplicates=dup
        )
        resp = ExportTraceServiceResponse()
        if bad:
            resp.partial_success.rejected_spans = bad
            resp.partial_success.error_message = "; ".join([*reasons, *more][:5])
            self._log.warning(
                "rejected", "otlp spans rejected count=%d reason=%s", bad, resp.partial_success.error_message
            )
        return resp

    def _encode(self, ev: EventBase) -> bytes:
        record = dict(ev.__dict__)
        record["ts_start"] = (ev.ts_start - _EPOCH) // _US
        record["ts_end"] = (ev.ts_end - _EPOCH) // _US
        return self.encoder.encode(type(ev), record)

    def _remember(self, event_ids: list[str]) -> None:
        """Event ids accepted (handed over, nothing dropped): a retried or replayed export skips them, so
        the topic (and the sink's tables, which do not dedup by event_id) holds them once. Bounded; only
        ids accepted by this process (a replay after a restart is deduplicated by the processors only)."""
        with self._accepted_lock:
            acc = self._accepted
            for eid in event_ids:
                acc[eid] = None
            while len(acc) > _ACCEPTED_MAX:
                acc.popitem(last=False)

    # -- HTTP ----------------------------------------------------------------------------------
    def handle_http(self, headers: Any, body: bytes, peer_cert: bytes | None = None) -> HttpAnswer:
        """``POST /v1/traces`` with the request's headers (case-insensitive mapping), raw body and the
        verified client certificate (DER) of its TLS connection, if any."""
        ctype = headers.get("Content-Type") or ""
        reply_type = "application/json" if ctype.lower().startswith("application/json") else "application/x-protobuf"
        try:
            identity = self.identify(headers.get("Authorization"), peer_cert)
            if len(body) > self.settings.max_request_bytes:
                raise RequestTooLarge(f"body exceeds {self.settings.max_request_bytes} bytes")
            data = decompress(body, headers.get("Content-Encoding") or "", self.settings.max_request_bytes)
            request = parse_request(data, ctype)
            resp = self.export(request, identity)
        except Backpressure as e:
            code = 8 if isinstance(e, Throttled) else 14  # google.rpc.Code RESOURCE_EXHAUSTED / UNAVAILABLE
            return HttpAnswer(
                e.status, "application/json", _status_json(code, str(e)), (("Retry-After", str(e.retry_after_s)),)
            )
        except OtlpError as e:
            self.counters.add(refused_requests=1)
            self._log.warning("refused", "otlp request refused status=%d reason=%s", e.status, e)
            return HttpAnswer(e.status, "application/json", _status_json(3 if e.status != 401 else 16, str(e)))
        return HttpAnswer(200, reply_type, encode_response(resp, reply_type))

    def health(self) -> dict[str, Any]:
        c = self.delivery.counters()
        return {
            "status": "ok",
            "receiver": self.counters.as_dict(),
            "delivery": {"delivered": c.delivered, "spooled": c.spooled, "dropped": c.dropped, "queued": c.queued},
        }

    def flush(self, timeout: float | None = None) -> bool:
        return self.delivery.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        done = self.delivery.close(timeout)
        if self.mapper.seq_store is not None:
            self.mapper.seq_store.close()
        return done


def _status_json(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` in its JSON form (what OTLP/HTTP error bodies carry)."""
    import json

    return json.dumps({"code": code, "message": message}).encode()


__all__ = ["HttpAnswer", "OtlpReceiver", "ReceiverCounters"]
