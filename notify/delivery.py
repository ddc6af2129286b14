"""HTTP delivery with retries: exponential backoff with jitter, only on transient failures.

Transient (retried): 5xx, 408, 429 (honouring Retry-After, seconds or HTTP date), timeouts and
connection/transport errors. Any other 4xx is permanent: the receiver will not accept this request
however often it is sent, so it fails at once. After ``max_attempts`` tries the delivery fails with
the last reason; the caller dead-letters it. Secrets are never logged: a log line names the route,
never the URL.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from tripwire.notify.channels import HttpRequest

log = logging.getLogger(__name__)


class _RedactSecrets(logging.Filter):
    """httpx logs each request's URL at INFO; webhook URLs are secrets, so they are masked."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        hidden = msg
        for s in tuple(self.secrets):
            if s in hidden:
                hidden = hidden.replace(s, "<redacted>")
        if hidden is not msg:
            record.msg, record.args = hidden, None
        return True


_REDACT = _RedactSecrets()


def redact_http_logs(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` in whatever the httpx/httpcore loggers write (process-wide, idempotent)."""
    _REDACT.secrets.update(s for s in secrets if s)
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay after failed try number ``attempt`` (1-based): half fixed, half random ("equal jitter")."""
        cap = min(self.backoff_max_s, self.backoff_initial_s * (2 ** (attempt - 1)))
        return cap / 2 + (rng or random).uniform(0, cap / 2)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    ok: bool
    attempts: int
    status: int | None
    reason: str
    error_type: str
    aborted: bool = False
    """Stopped by shutdown before the outcome was known: neither delivered nor dead-lettered."""


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if absent or unparsable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _transient_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def deliver(
    client: httpx.Client,
    request: HttpRequest,
    policy: RetryPolicy,
    *,
    route: str,
    stop: threading.Event | None = None,
    rng: random.Random | None = None,
) -> DeliveryResult:
    """POST ``request`` until it succeeds (2xx), fails permanently, or ``policy.max_attempts`` is spent."""
    stop = stop or threading.Event()
    reason, error_type, status = "", "", None
    for attempt in range(1, policy.max_attempts + 1):
        wait: float | None = None
        try:
            resp = client.post(request.url, content=request.body, headers=request.headers_for_attempt())
        except httpx.TimeoutException as e:
            status, error_type, reason = None, "Timeout", f"timeout ({type(e).__name__})"
        except httpx.TransportError as e:
            status, error_type, reason = None, "ConnectionError", f"transport error ({type(e).__name__})"
        else:
            status = resp.status_code
            if 200 <= status < 300:
                return DeliveryResult(True, attempt, status, "delivered", "")
            error_type = f"HTTP{status}"
            reason = f"http {status}"
            if not _transient_status(status):
                log.warning("delivery rejected route=%s status=%d attempt=%d", route, status, attempt)
                return DeliveryResult(False, attempt, status, f"{reason} (permanent)", error_type)
            if status == 429:
                ra = retry_after_s(resp.headers.get("Retry-After"))
                if ra is not None:
                    wait = min(ra, policy.retry_after_max_s)
        if attempt == policy.max_attempts:
            break
        if wait is None:
            wait = policy.backoff(attempt, rng)
        log.info("delivery retry route=%s attempt=%d reason=%s wait_s=%.3f", route, attempt, reason, wait)
        if stop.wait(wait):
            return DeliveryResult(False, attempt, status, f"stopped after {reason}", error_type, aborted=True)
    log.warning("delivery failed route=%s attempts=%d reason=%s", route, policy.max_attempts, reason)
    return DeliveryResult(
        False, policy.max_attempts, status, f"gave up after {policy.max_attempts} tries: {reason}", error_type
    )
