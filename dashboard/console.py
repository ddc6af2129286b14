"""SQL: a read-only analyst console with a row limit, a timeout, CSV download and examples.

Each statement is checked by ``tripwire.sinks.check_readonly_sql`` (ClickHouse's own parser: one
query statement, no output to a file, no settings clause, whitelisted table functions; the same
check as ``tripwire sql``, see ``sinks/sql_guard.py``), and the canonical text it returns runs on a
separate read-only connection (chdb ``readonly=1``, or ``readonly=2`` on a server) with the engine
enforcing the time limit and the row limit: the second wall.
"""

from __future__ import annotations

import threading

import streamlit as st

from tripwire.dashboard import _ui, actions, data
from tripwire.dashboard.errors import ConsoleQueryError
from tripwire.sinks import QueryLimits, QueryResult, ReadOnlyQueryError, Store, check_readonly_sql, queries

ROW_LIMITS = [100, 1_000, 10_000, 100_000]
TIMEOUTS = [5, 30, 60, 300]

_lock = threading.Lock()
_readers: dict[tuple[str, int, float], Store] = {}


def check_statement(store: Store, sql: str) -> str:
    """The statement to run for ``sql`` (one read-only statement, as ClickHouse formats it), else
    ConsoleQueryError saying what is not allowed."""
    try:
        return check_readonly_sql(store, sql)
    except ReadOnlyQueryError as e:
        raise ConsoleQueryError(str(e)) from e


def _reader(max_rows: int, timeout_s: float) -> Store:
    """A read-only connection to the dashboard's store with these limits (one per limit pair, reused)."""
    base = data.get_store()
    key = (base.location(), max_rows, timeout_s)
    with _lock:
        store = _readers.get(key)
        if store is None:
            store = _readers[key] = base.open_reader(QueryLimits(max_rows=max_rows, timeout_s=timeout_s))
        return store


def close_readers() -> None:
    with _lock:
        for store in _readers.values():
            store.close()
        _readers.clear()


def run_readonly(sql: str, *, max_rows: int, timeout_s: float) -> QueryResult:
    actions.authorize(_ui.current_actor(), actions.Action.SQL, {"sql": sql[:AUDIT_SQL_CHARS], "chars": len(sql)})
    cfg = data.settings()
    store = _reader(min(max_rows, cfg.sql_max_rows), min(timeout_s, cfg.sql_timeout_s))
    text = check_statement(store, sql)
    try:
        return store.query(text)
    except Exception as e:
        raise ConsoleQueryError(str(e)) from e


AUDIT_SQL_CHARS = 2000


def _use(example: str) -> None:
    st.session_state["sql_text"] = queries.EXAMPLES[example]


def body() -> None:
    st.caption("Read-only. Tables: run_summaries (use FINAL), model_calls, tool_calls, run_events, alerts, "
               "killswitch_audit, model_calls_1m, tool_calls_1m, window_stats, dead_letters.")
    cols = st.columns(len(queries.EXAMPLES))
    for i, name in enumerate(queries.EXAMPLES):
        cols[i].button(name, key=f"sql_ex_{i}", on_click=_use, args=(name,))
    st.session_state.setdefault("sql_text", next(iter(queries.EXAMPLES.values())))
    sql = st.text_area("SQL", key="sql_text", height=180)
    c = st.columns([1, 1, 4])
    max_rows = c[0].selectbox("Row limit", ROW_LIMITS, index=1, key="sql_rows")
    timeout = c[1].selectbox("Timeout (s)", TIMEOUTS, index=1, key="sql_timeout")
    if not _ui.can(actions.Action.SQL):
        st.info("The SQL console needs the analyst role.")
        return
    if st.button("Run", type="primary", key="sql_run"):
        try:
            st.session_state["sql_result"] = run_readonly(sql, max_rows=max_rows, timeout_s=float(timeout))
            st.session_state.pop("sql_error", None)
        except Exception as e:
            st.session_state.pop("sql_result", None)
            st.session_state["sql_error"] = _ui.error_message(e)
    if "sql_error" in st.session_state:
        st.error(st.session_state["sql_error"])
    result: QueryResult | None = st.session_state.get("sql_result")
    if result is None:
        return
    import pandas as pd

    df = pd.DataFrame(result.rows, columns=list(result.columns))
    st.caption(f"{len(df)} rows" + (f" (truncated at the {len(df)}-row limit)" if result.truncated else ""))
    st.dataframe(df, hide_index=True, key="sql_table")
    st.download_button("Download CSV", df.to_csv(index=False).encode(), file_name="tripwire-query.csv",
                       mime="text/csv", key="sql_csv")


def render() -> None:
    st.title("SQL")
    _ui.guarded(body)
