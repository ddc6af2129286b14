"""OTLP protobuf/JSON request bodies -> plain :class:`RawSpan` values (decoding by ``opentelemetry-proto``)."""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError as _ProtoDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tripwire.producers.otlp.errors import MalformedRequest, RequestTooLarge

STATUS_CODE_ERROR = 2


@dataclass(slots=True)
class RawSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_us: int
    end_us: int
    error: bool
    status_message: str
    attrs: dict[str, Any]
    resource: dict[str, Any]
    events: dict[str, dict[str, Any]] = field(default_factory=dict)


def any_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise MalformedRequest(f"unsupported Content-Encoding {encoding!r} (expected gzip, deflate or none)")
    d = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise MalformedRequest(f"body is not valid {enc}: {e}") from e
    if len(out) > limit:
        raise RequestTooLarge(f"decompressed body exceeds {limit} bytes")
    if not d.eof:
        raise MalformedRequest(f"body is truncated {enc}")
    return out


def _hex_ids_to_b64(obj: Any) -> Any:
    """OTLP/JSON writes traceId/spanId/parentSpanId as hex; protobuf's JSON mapping expects base64."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id") and isinstance(
                v, str
            ):
                try:
                    out[k] = base64.b64encode(bytes.fromhex(v)).decode()
                except ValueError as e:
                    raise MalformedRequest(f"{k} is not hex: {v!r}") from e
            else:
                out[k] = _hex_ids_to_b64(v)
        return out
    if isinstance(obj, list):
        return [_hex_ids_to_b64(x) for x in obj]
    return obj


def parse_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    req = ExportTraceServiceRequest()
    if ct == "application/x-protobuf":
        try:
            req.ParseFromString(body)
        except (_ProtoDecodeError, RuntimeError, ValueError) as e:
            raise MalformedRequest(f"body is not a valid ExportTraceServiceRequest protobuf: {e}") from e
        return req
    if ct == "application/json":
        try:
            json_format.ParseDict(_hex_ids_to_b64(json.loads(body)), req, ignore_unknown_fields=True)
        except (ValueError, json_format.ParseError, RecursionError) as e:
            raise MalformedRequest(f"body is not a valid OTLP/JSON ExportTraceServiceRequest: {e}") from e
        return req
    raise MalformedRequest(
        f"unsupported Content-Type {content_type!r} (expected application/x-protobuf or application/json)",
        status=415,
    )


def encode_response(resp: ExportTraceServiceResponse, content_type: str) -> bytes:
    if content_type.startswith("application/json"):
        return json_format.MessageToJson(resp).encode()
    return resp.SerializeToString()  # type: ignore[no-any-return]


def _nonzero_hex(b: bytes, size: int) -> str | None:
    if len(b) != size or not any(b):
        return None
    return b.hex()


def raw_spans(req: ExportTraceServiceRequest) -> tuple[list[RawSpan], int, list[str]]:
    """(spans, invalid count, reasons): spans whose ids are missing or malformed are counted, not raised."""
    out: list[RawSpan] = []
    invalid = 0
    reasons: list[str] = []
    for rs in req.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                trace_id = _nonzero_hex(sp.trace_id, 16)
                span_id = _nonzero_hex(sp.span_id, 8)
                if trace_id is None or span_id is None:
                    invalid += 1
                    if len(reasons) < 3:
                        reasons.append(f"span {sp.name!r}: invalid trace_id or span_id")
                    continue
                parent = _nonzero_hex(sp.parent_span_id, 8) if sp.parent_span_id else None
                events: dict[str, dict[str, Any]] = {}
                for ev in sp.events:
                    if ev.name not in events:
                        events[ev.name] = attributes(ev.attributes)
                start = sp.start_time_unix_nano // 1000
                out.append(
                    RawSpan(
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_span_id=parent,
                        name=sp.name,
                        start_us=start,
                        end_us=max(start, sp.end_time_unix_nano // 1000),
                        error=sp.status.code == STATUS_CODE_ERROR,
                        status_message=sp.status.message,
                        attrs=attributes(sp.attributes),
                        resource=resource,
                        events=events,
                    )
                )
    return out, invalid, reasons


__all__ = ["RawSpan", "decompress", "encode_response", "parse_request", "raw_spans"]
