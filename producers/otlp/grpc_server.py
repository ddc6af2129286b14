"""OTLP/gRPC front end: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` on grpcio.

Errors map to the codes the OTLP exporters act on: RESOURCE_EXHAUSTED when the producer's queue and
spool are full, UNAVAILABLE when the hand-off did not finish in time, both with a ``RetryInfo`` (so
the exporter retries after its delay); UNAUTHENTICATED for a bad token, INVALID_ARGUMENT otherwise;
grpcio itself answers RESOURCE_EXHAUSTED (no RetryInfo: not retried) for a message above
``max_request_bytes``.
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
from tripwire.producers.otlp.mtls import grpc_peer_cert, grpc_server_credentials
from tripwire.producers.otlp.receiver import OtlpReceiver

logger = logging.getLogger(__name__)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: ExportTraceServiceRequest, context: Any) -> ExportTraceServiceResponse:
        r = self.receiver
        auth = dict(context.invocation_metadata()).get("authorization")
        try:
            identity = r.identify(auth, grpc_peer_cert(context))
            return r.export(request, identity)
        except Backpressure as e:
            context.set_trailing_metadata(_retry_metadata(e))
            context.abort(getattr(grpc.StatusCode, e.grpc_code), str(e))
        except Unauthenticated as e:
            r.counters.add(refused_requests=1)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(e))
        except OtlpError as e:
            r.counters.add(refused_requests=1)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        raise AssertionError("unreachable: context.abort raises")


def _retry_metadata(e: Backpressure) -> tuple[tuple[str, str | bytes], ...]:
    """A ``google.rpc.RetryInfo`` with the delay, in the standard ``grpc-status-details-bin`` (a
    ``google.rpc.Status`` carrying it) and in ``google.rpc.retryinfo-bin`` (where the Python OTLP exporter
    reads it); the spec makes RESOURCE_EXHAUSTED retryable only when RetryInfo is present."""
    from google.protobuf.any_pb2 import Any as AnyProto
    from google.protobuf.duration_pb2 import Duration
    from google.rpc.error_details_pb2 import RetryInfo
    from google.rpc.status_pb2 import Status

    info = RetryInfo(retry_delay=Duration(seconds=e.retry_after_s))
    detail = AnyProto()
    detail.Pack(info)
    code = getattr(grpc.StatusCode, e.grpc_code).value[0]
    status = Status(code=code, message=str(e), details=[detail])
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", info.SerializeToString()),
        ("retry-after", str(e.retry_after_s)),
    )


class OtlpGrpcServer:
    def __init__(self, receiver: OtlpReceiver, host: str, port: int, workers: int = 8) -> None:
        limit = receiver.settings.max_request_bytes
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tripwire-otlp-grpc"),
            options=[("grpc.max_receive_message_length", limit)],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(receiver), self._server)
        s = receiver.settings
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            creds = grpc_server_credentials(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
            self.port = self._server.add_secure_port(f"{host}:{port}", creds)
        else:
            self.port = self._server.add_insecure_port(f"{host}:{port}")

    def start(self) -> OtlpGrpcServer:
        self._server.start()
        return self

    def stop(self, grace: float = 2.0) -> None:
        self._server.stop(grace).wait(grace + 1)


__all__ = ["OtlpGrpcServer"]
