"""OTLP/HTTP front end on the standard library's ``ThreadingHTTPServer`` (no extra dependency: the
handler only reads a bounded body and hands it to :meth:`OtlpReceiver.handle_http`).

``POST /v1/traces`` (protobuf or JSON, optionally gzip) and ``GET /health``. A body larger than
``max_request_bytes`` is refused from its ``Content-Length`` without being read (413), a request without
a length gets 411, anything else 404/405; every error is an answer, never a dead connection.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tripwire.producers.otlp.mtls import server_ssl_context
from tripwire.producers.otlp.receiver import OtlpReceiver

logger = logging.getLogger(__name__)
TRACES_PATH = "/v1/traces"


class _Handler(BaseHTTPRequestHandler):
    server: OtlpHttpServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may sit idle or trickle its body (a slow client cannot pin a thread)

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):  # the TLS handshake, on this connection's thread
            self.request.settimeout(self.timeout)
            self.request.do_handshake()  # refused (no/unknown client certificate): the server logs it
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("otlp http " + format, *args)

    def _answer(self, status: int, ctype: str, body: bytes, headers: tuple[tuple[str, str], ...] = (),
                close: bool = False) -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, close: bool = False) -> None:
        body = json.dumps({"code": 3, "message": message}).encode()
        self._answer(status, "application/json", body, close=close)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] in ("/health", "/healthz"):
            self._answer(200, "application/json", json.dumps(self.server.receiver.health()).encode())
            return
        self._error(404, f"no such path {self.path!r} (POST {TRACES_PATH})")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != TRACES_PATH:
            self._error(404, f"no such path {self.path!r} (POST {TRACES_PATH})", close=True)
            return
        raw_len = self.headers.get("Content-Length")
        if raw_len is None:
            self._error(411, "Content-Length is required", close=True)
            return
        try:
            length = int(raw_len)
        except ValueError:
            self._error(400, f"bad Content-Length {raw_len!r}", close=True)
            return
        limit = self.server.receiver.settings.max_request_bytes
        if length < 0 or length > limit:
            self.server.receiver.counters.add(refused_requests=1)
            self._error(413, f"body of {length} bytes exceeds max_request_bytes={limit}", close=True)
            return
        body = self.rfile.read(length)
        peer = self.request.getpeercert(binary_form=True) if isinstance(self.request, ssl.SSLSocket) else None
        ans = self.server.receiver.handle_http(self.headers, body, peer)
        self._answer(ans.status, ans.content_type, ans.body, ans.headers)

    def do_PUT(self) -> None:
        self._error(405, f"use POST {TRACES_PATH}", close=True)


class OtlpHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, receiver: OtlpReceiver, host: str, port: int) -> None:
        self.receiver = receiver
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None
        s = receiver.settings
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            ctx = server_ssl_context(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
            # the handshake runs in the connection's thread (_Handler.setup), not in the accept loop
            self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        e = sys.exc_info()[1]
        if isinstance(e, (ssl.SSLError, OSError)):  # a refused handshake or a dropped connection
            self.receiver.counters.add(refused_requests=1)
            logger.info("otlp https connection refused peer=%s error=%s", client_address, e)
            return
        super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> OtlpHttpServer:
        self._thread = threading.Thread(target=self.serve_forever, name="tripwire-otlp-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)


__all__ = ["TRACES_PATH", "OtlpHttpServer"]
