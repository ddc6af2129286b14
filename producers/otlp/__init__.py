"""tripwire.producers.otlp: the OTLP receiver (``tripwire otlp``), extra ``[otlp]``.

Any agent already instrumented with OpenTelemetry (GenAI semantic conventions, OpenInference or
OpenLLMetry/traceloop) exports its spans here; they become the SDK's events on ``tripwire.events.v1``
through the SDK's redactor, cost calculator, contract models and durable delivery.

    receiver = OtlpReceiver(OtlpSettings(), TracerConfig())
    servers = serve(receiver)          # OTLP/HTTP on 4318, OTLP/gRPC on 4317
    ...
    servers.stop(); receiver.close()
"""

from __future__ import annotations

from dataclasses import dataclass

from tripwire.core.errors import MissingExtraError

try:
    import google.protobuf  # noqa: F401
    import opentelemetry.proto  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise MissingExtraError("opentelemetry-proto", "otlp") from e

from tripwire.producers.otlp._proto import RawSpan, parse_request, raw_spans
from tripwire.producers.otlp.config import OtlpSettings, TokenAuth
from tripwire.producers.otlp.dialects import FIELDS, SpanFacts, read_facts
from tripwire.producers.otlp.errors import (
    Backpressure,
    MalformedRequest,
    OtlpError,
    RequestTooLarge,
    Throttled,
    Unauthenticated,
)
from tripwire.producers.otlp.http_server import TRACES_PATH, OtlpHttpServer
from tripwire.producers.otlp.mapping import Identity, MappingOptions, SpanMapper, event_id, span_run_id, trace_run_id
from tripwire.producers.otlp.receiver import HttpAnswer, OtlpReceiver


@dataclass
class Servers:
    http: OtlpHttpServer | None
    grpc: object | None

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
        if self.grpc is not None:
            self.grpc.stop()  # type: ignore[attr-defined]


def serve(receiver: OtlpReceiver) -> Servers:
    """Start the front ends the settings enable (gRPC needs ``grpcio``, part of the ``[otlp]`` extra)."""
    s = receiver.settings
    http = OtlpHttpServer(receiver, s.host, s.http_port).start() if s.http_enabled else None
    grpc_server = None
    if s.grpc_enabled:
        try:
            from tripwire.producers.otlp.grpc_server import OtlpGrpcServer
        except ImportError as e:
            if http is not None:
                http.stop()
            raise MissingExtraError("grpcio", "otlp") from e
        grpc_server = OtlpGrpcServer(receiver, s.host, s.grpc_port).start()
    return Servers(http, grpc_server)


__all__ = [
    "FIELDS",
    "TRACES_PATH",
    "Backpressure",
    "HttpAnswer",
    "Identity",
    "MalformedRequest",
    "MappingOptions",
    "OtlpError",
    "OtlpHttpServer",
    "OtlpReceiver",
    "OtlpSettings",
    "RawSpan",
    "RequestTooLarge",
    "Servers",
    "SpanFacts",
    "SpanMapper",
    "Throttled",
    "TokenAuth",
    "Unauthenticated",
    "event_id",
    "parse_request",
    "raw_spans",
    "read_facts",
    "serve",
    "span_run_id",
    "trace_run_id",
]
