"""Where the dashboard gets its data: one process-wide ``Store`` and the filters every page shares.

``get_store()`` returns the store a host process registered with ``set_store`` (the embedded
demo runs the pipeline and the dashboard in one process, and chdb binds its folder to one
process), and otherwise opens the configured URL once per process (``st.cache_resource``).
Pages run named queries of the one catalog (``tripwire.sinks.QUERIES``) by name with ``frame`` /
``rows``: the dashboard holds no SQL of its own. Kill-switch commands go the same way:
``set_command_sink`` lets a host deliver signed commands in-process; otherwise they are
published to the kill-switch topic on Kafka.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tripwire.dashboard.config import DashboardSettings
from tripwire.dashboard.errors import NoStoreError
from tripwire.sinks import Store, migrate, open_store, run_query, run_query_df

if TYPE_CHECKING:
    import pandas as pd

    from tripwire.schemas import KillSwitchCommand

log = logging.getLogger(__name__)

_lock = threading.Lock()
_store: Store | None = None
_command_sink: Callable[[KillSwitchCommand], None] | None = None
_settings: DashboardSettings | None = None
_feed: Callable[[], list[dict[str, Any]]] | None = None

NO_DATA_HINT = (
    "No data yet. Start the embedded demo with `tripwire demo`, or run the pipeline "
    "(`tripwire sink --store ...` with agents emitting events) against this store."
)


def set_store(store: Store | None) -> None:
    """Register the process-wide store (None unregisters it; the caller keeps ownership)."""
    global _store
    with _lock:
        _store = store
        _cache.clear()


def set_command_sink(sink: Callable[[KillSwitchCommand], None] | None) -> None:
    """Register an in-process receiver of signed kill-switch commands (None: publish to Kafka)."""
    global _command_sink
    with _lock:
        _command_sink = sink


def command_sink() -> Callable[[KillSwitchCommand], None] | None:
    return _command_sink


def set_feed(feed: Callable[[], list[dict[str, Any]]] | None) -> None:
    """Register the embedded demo's story feed (rows, newest first; None unregisters it): the
    Overview then shows it as a panel. Only the demo has one; it is in-process state, not stored."""
    global _feed
    with _lock:
        _feed = feed


def feed_rows() -> list[dict[str, Any]] | None:
    """The demo's story lines, or None outside the demo."""
    feed = _feed
    return feed() if feed is not None else None


def set_settings(settings: DashboardSettings | None) -> None:
    """Override the settings (the CLI and tests; None re-reads the environment)."""
    global _settings
    with _lock:
        _settings = settings


def settings() -> DashboardSettings:
    global _settings
    with _lock:
        if _settings is None:
            _settings = DashboardSettings()
        return _settings


def get_store() -> Store:
    """The registered store, else the configured URL opened once per process."""
    store = _store
    if store is not None:
        return store
    url = settings().store_url
    if url is None:
        raise NoStoreError(
            "no store configured: start the dashboard with `tripwire dashboard --store chdb:///path` "
            "or set TRIPWIRE_DASHBOARD_STORE_URL"
        )
    return _open_cached(url.get_secret_value())


def open_url(url: str) -> Store:
    store = open_store(url)
    try:
        migrate(store)  # an empty store shows "no data yet" instead of missing tables
    except Exception as e:  # a server user without DDL rights still reads
        log.warning("dashboard could not apply migrations error=%s", type(e).__name__)
    return store


@functools.cache
def _cached_opener() -> Callable[[str], Store]:
    import streamlit as st

    return st.cache_resource(show_spinner=False, max_entries=2)(open_url)


def _open_cached(url: str) -> Store:
    return _cached_opener()(url)


def frame(name: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run the named query of ``tripwire.sinks.QUERIES`` with these parameters (and choices) on the
    store; a pandas DataFrame."""
    return run_query_df(get_store(), name, **(params or {}))


def rows(name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``frame``, as a list of dicts."""
    return run_query(get_store(), name, **(params or {})).dicts()


_cache: dict[tuple[int, str, str], tuple[float, pd.DataFrame]] = {}
DIMENSIONS_TTL_S = 60.0


def cached_frame(
    name: str, params: Mapping[str, Any] | None = None, *, ttl_s: float = DIMENSIONS_TTL_S
) -> pd.DataFrame:
    """``frame`` remembered for ``ttl_s`` per store (filter choices: they change slowly and every page needs them)."""
    import time

    key = (id(get_store()), name, repr(sorted((params or {}).items())))
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < ttl_s:
        return hit[1].copy()
    df = frame(name, params)
    with _lock:
        if len(_cache) > 256:
            _cache.clear()
        _cache[key] = (now, df)
    return df.copy()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


# -- filters --------------------------------------------------------------------------------

RANGES: dict[str, timedelta | None] = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "All time": None,
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_POINTS = 120
CHART_BUCKETS = (10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)


def bucket_for_span(span_s: float) -> int:
    """The smallest bucket of ``CHART_BUCKETS`` that puts ``span_s`` seconds of data in at most
    ``MAX_POINTS`` points (a day for anything longer)."""
    for bucket in CHART_BUCKETS:
        if span_s <= bucket * MAX_POINTS:
            return bucket
    return CHART_BUCKETS[-1]


@dataclass(frozen=True, slots=True)
class Filters:
    """The time range and the tenant/agent/workflow filters ('' = all)."""

    since: datetime
    until: datetime
    tenant: str = ""
    agent: str = ""
    workflow: str = ""

    @classmethod
    def for_range(cls, label: str, *, now: datetime | None = None, **kw: str) -> Filters:
        now = now or datetime.now(UTC)
        span = RANGES[label]
        until = now + timedelta(minutes=1)  # include the minute in progress and clock skew
        since = EPOCH if span is None else now - span
        return cls(since=since, until=until, **kw)

    def params(self) -> dict[str, Any]:
        """The filter values by the dashboard's names (queries take ``window()``)."""
        return {
            "since": self.since,
            "until": self.until,
            "tenant": self.tenant,
            "agent": self.agent,
            "workflow": self.workflow,
        }

    def window(self, *, workflow: bool = True) -> dict[str, Any]:
        """The catalog's window parameters: [start, end) and tenant / agent_id / workflow ('' = all).
        ``workflow=False`` for the queries of the rollups and alerts, which carry no workflow."""
        out = {"start": self.since, "end": self.until, "tenant": self.tenant, "agent_id": self.agent}
        if workflow:
            out["workflow"] = self.workflow
        return out

    @property
    def minutes(self) -> float:
        return max((self.until - self.since).total_seconds() / 60.0, 1.0)

    def chart_bucket_s(self, first: datetime | None, last: datetime | None) -> int:
        """The bucket of a chart of the data between ``first`` and ``last`` (what the range holds):
        at most ``MAX_POINTS`` points, so a fresh demo shows 10-second points and a week hourly ones."""
        if first is None or last is None:
            return self.bucket_s
        return bucket_for_span((last - first).total_seconds())

    @property
    def bucket_s(self) -> int:
        """Time-series bucket: about 100-400 points whatever the range (1 minute up to 1 day)."""
        span = (self.until - self.since).total_seconds()
        for bucket in (60, 300, 900, 3600, 4 * 3600):
            if span <= bucket * 400:
                return bucket
        return 86400
