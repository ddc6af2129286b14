"""OTLP/gRPC front end: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` on grpcio.

Errors map to the codes the OTLP exporters act on: UNAVAILABLE (retried) when the producer's queue
and spool are full, UNAUTHENTICATED for a bad token, INVALID_ARGUMENT otherwise; grpcio itself answers
RESOURCE_EXHAUSTED for a message above ``max_request_bytes``.
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tripwire.producers.otlp.errors import Backpressure, OtlpError, Unauthenticated
from tripwire.producers.otlp.receiver import OtlpReceiver

logger = logging.getLogger(__name__)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: ExportTraceServiceRequest, context: Any) -> ExportTraceServiceResponse:
        r = self.receiver
        auth = dict(context.invocation_metadata()).get("authorization")
        try:
            identity = r.auth.identify(auth)
            return r.export(request, identity)
        except Backpressure as e:
            context.set_trailing_metadata((("retry-after", str(e.retry_after_s)),))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        except Unauthenticated as e:
            r.counters.add(refused_requests=1)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(e))
        except OtlpError as e:
            r.counters.add(refused_requests=1)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        raise AssertionError("unreachable: context.abort raises")


class OtlpGrpcServer:
    def __init__(self, receiver: OtlpReceiver, host: str, port: int, workers: int = 8) -> None:
        limit = receiver.settings.max_request_bytes
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tripwire-otlp-grpc"),
            options=[("grpc.max_receive_message_length", limit)],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(receiver), self._server)
        self.port = self._server.add_insecure_port(f"{host}:{port}")

    def start(self) -> OtlpGrpcServer:
        self._server.start()
        return self

    def stop(self, grace: float = 2.0) -> None:
        self._server.stop(grace).wait(grace + 1)


__all__ = ["OtlpGrpcServer"]
