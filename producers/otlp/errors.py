"""Errors of the OTLP receiver, under the SDK's :class:`~tripwire.producers.errors.ProducerError`."""

from __future__ import annotations

from tripwire.producers.errors import ProducerError


class OtlpError(ProducerError):
    """A request the receiver refuses; ``status`` is the HTTP status it answers with."""

    status = 400
    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class MalformedRequest(OtlpError):
    """Not a decodable ExportTraceServiceRequest (400), or a content type we do not speak (415)."""


class RequestTooLarge(OtlpError):
    """The body (or its decompressed form) exceeds ``max_request_bytes`` (413)."""

    status = 413


class Unauthenticated(OtlpError):
    """Missing or unknown bearer token (401)."""

    status = 401


class Backpressure(OtlpError):
    """The events could not be handed over in time, or the producer dropped some (503 / gRPC UNAVAILABLE:
    the receiver is unavailable for now; both retryable, with Retry-After / RetryInfo)."""

    status = 503
    retryable = True
    grpc_code = "UNAVAILABLE"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Throttled(Backpressure):
    """The producer's hand-off queue and spool have no room for the request (429 Too Many Requests /
    gRPC RESOURCE_EXHAUSTED; OTLP exporters retry both, after Retry-After / RetryInfo)."""

    status = 429
    grpc_code = "RESOURCE_EXHAUSTED"


__all__ = ["Backpressure", "MalformedRequest", "OtlpError", "RequestTooLarge", "Throttled", "Unauthenticated"]
