"""Retry decisions: transient failures are retried with backoff (and Retry-After), permanent ones are not.
httpx's MockTransport stands in for the network here; the real receiver is in the integration tests."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tests.notify_helpers import make_alert
from tripwire.notify import RetryPolicy, deliver, from_alert, retry_after_s, routes_from_dict

pytestmark = pytest.mark.unit


class RecordingStop(threading.Event):
    """Records the back-off waits instead of sleeping them."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0))
        return self.is_set()


def _run(responses: list, max_attempts: int = 5) -> tuple[object, list[httpx.Request], list[float]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses[min(len(seen) - 1, len(responses) - 1)]
        if isinstance(item, Exception):
            raise item
        return item

    route = routes_from_dict({"routes": [{"name": "r", "channel": "webhook", "url": "http://rx.test/h",
                                          "hmac_key": "k"}]})[0]
    stop = RecordingStop()
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        result = deliver(client, route.request(from_alert(make_alert("inc-9"))),
                         RetryPolicy(max_attempts, 1.0, 8.0, 30.0), route="r", stop=stop, rng=random.Random(7))
    return result, seen, stop.waits


def test_500_three_times_then_200() -> None:
    result, seen, waits = _run([httpx.Response(500)] * 3 + [httpx.Response(200)])
    assert (result.ok, result.attempts, result.status) == (True, 4, 200)
    assert len(seen) == 4 and {r.headers["x-tripwire-dedup-key"] for r in seen} == {"inc-9"}
    assert len({r.content for r in seen}) == 1
    # equal jitter: attempt n waits in [cap/2, cap], cap = min(8, 1 * 2**(n-1))
    assert [lo <= w <= hi for w, (lo, hi) in zip(waits, [(0.5, 1), (1, 2), (2, 4)], strict=True)] == [True] * 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_permanent_4xx_is_not_retried(status: int) -> None:
    result, seen, waits = _run([httpx.Response(status)])
    assert (result.ok, result.attempts, len(seen), waits) == (False, 1, 1, [])
    assert result.reason == f"http {status} (permanent)" and result.error_type == f"HTTP{status}"


def test_429_honours_retry_after_up_to_the_cap() -> None:
    result, _, waits = _run([httpx.Response(429, headers={"Retry-After": "3"}),
                             httpx.Response(429, headers={"Retry-After": "999"}), httpx.Response(202)])
    assert (result.ok, result.attempts, waits) == (True, 3, [3.0, 30.0])


def test_timeouts_and_connection_errors_are_retried_then_given_up() -> None:
    result, seen, waits = _run([httpx.ConnectError("refused"), httpx.ReadTimeout("slow")], max_attempts=3)
    assert (result.ok, result.attempts, len(seen), len(waits)) == (False, 3, 3, 2)
    assert (result.reason, result.error_type) == ("gave up after 3 tries: timeout (ReadTimeout)", "Timeout")


def test_a_stop_during_backoff_aborts_without_an_outcome() -> None:
    seen = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal seen
        seen += 1
        return httpx.Response(503)

    stop = threading.Event()
    stop.set()
    route = routes_from_dict({"routes": [{"name": "r", "channel": "slack", "url": "http://rx.test/h"}]})[0]
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        result = deliver(client, route.request(from_alert(make_alert())), RetryPolicy(5), route="r", stop=stop)
    assert (result.ok, result.aborted, seen) == (False, True, 1)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    p = RetryPolicy(10, backoff_initial_s=0.5, backoff_max_s=4.0)
    rng = random.Random(1)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        samples = [p.backoff(attempt, rng) for _ in range(200)]
        assert min(samples) >= cap / 2 and max(samples) <= cap
        assert len(set(samples)) > 1  # jittered


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_s("12", now) == 12.0
    assert retry_after_s(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert retry_after_s(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0.0
    assert [retry_after_s(v, now) for v in (None, "", "soon")] == [None, None, None]
