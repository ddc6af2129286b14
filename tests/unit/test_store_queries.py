"""The one query catalog (``tripwire.sinks.queries``): binding fails fast, picks the grain and the
whitelisted choices; values never become SQL text; the dashboard holds no SQL of its own and every
query it runs is a catalog name."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tripwire.sinks import QueryError
from tripwire.sinks import queries as Q

pytestmark = pytest.mark.unit

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_named_query_binding_fails_fast_and_picks_the_grain() -> None:
    with pytest.raises(KeyError, match="unknown query"):
        Q.bind("nope", {})
    with pytest.raises(ValueError, match="missing \\['end'"):
        Q.bind("agent_overview", {"tenant": "a", "agent_id": "", "start": datetime.now(UTC)})
    with pytest.raises(ValueError, match="unexpected \\['x'\\]"):
        Q.bind("dead_letters_recent", {"start": datetime.now(UTC), "x": 1})
    now = NOW
    sql, _ = Q.bind("cost_timeseries", Q.default_params("cost_timeseries", tenant="t", now=now) | {"bucket_s": 60})
    assert "FROM model_calls_1m" in sql and "@" not in sql
    sql, _ = Q.bind("cost_timeseries", Q.default_params("cost_timeseries", tenant="t", now=now) | {"bucket_s": 7200})
    assert "FROM model_calls_1h" in sql and "toStartOfHour(" in sql
    p = Q.default_params("version_latency", tenant="t", now=now, hours=1)
    assert "model_calls_1m" in Q.bind("version_latency", p)[0]
    p["start"] = now - timedelta(hours=6)
    assert "model_calls_1h" in Q.bind("version_latency", p)[0]
    for name in Q.QUERIES:  # values never reach the SQL text
        sql, _ = Q.bind(name, Q.default_params(name, tenant="x' OR 1=1 --", now=now))
        assert "1=1" not in sql
        if "tenant" in Q.QUERIES[name].params:
            assert "{tenant:String}" in sql


def test_grain_follows_bucket_and_window() -> None:
    assert Q.grain({"bucket_s": 3600}) == "hour" and Q.grain({"bucket_s": 300}) == "minute"
    assert Q.grain({"bucket_s": 300, "start": NOW - timedelta(days=7), "end": NOW}) == "minute"
    assert Q.grain({"start": NOW - timedelta(hours=6), "end": NOW}) == "hour"
    assert Q.grain({"start": NOW - timedelta(hours=5, minutes=59), "end": NOW}) == "minute"
    # the hourly source still reads the partial hours at both ends from the per-minute rollup
    sql, _ = Q.bind("model_mix", Q.default_params("model_mix", tenant="t", now=NOW, hours=24))
    assert "FROM model_calls_1h" in sql and "FROM model_calls_1m" in sql and "UNION ALL" in sql
    sql, _ = Q.bind("model_mix", Q.default_params("model_mix", tenant="t", now=NOW, hours=1))
    assert "model_calls_1h" not in sql and "FROM model_calls_1m" in sql


def test_optional_filters_default_to_all_and_required_ones_stay_required() -> None:
    _, p = Q.bind("agent_overview", {"tenant": "a", "start": NOW, "end": NOW})
    assert p == {"tenant": "a", "start": NOW, "end": NOW, "agent_id": "", "workflow": ""}
    with pytest.raises(QueryError, match="missing \\['agent_id'\\]"):
        Q.bind("release_gate", {"agent_version": "1", "tenant": ""})
    _, p = Q.bind("run_trace", {"run_id": "r"})
    assert (p["tenant"], p["agent_id"], p["start"].year, p["end"].year) == ("", "", 1970, 2200)


def test_split_columns_are_a_whitelist() -> None:
    assert Q.split_column("version") == "agent_version"
    assert Q.split_column("model") == "model"
    assert Q.split_column("none") == "'all'"
    with pytest.raises(QueryError, match="unknown split"):
        Q.split_column("model; DROP TABLE alerts")
    params = Q.default_params("model_call_series", tenant="t", now=NOW)
    assert "model AS series" in Q.bind("model_call_series", {**params, "split": "model"})[0]
    assert "'all' AS series" in Q.bind("model_call_series", params)[0]  # the first choice is the default
    with pytest.raises(QueryError, match="unknown split"):
        Q.bind("model_call_series", {**params, "split": "model; DROP TABLE alerts"})


def _every_text() -> list[str]:
    texts = []
    for name, q in Q.QUERIES.items():
        for hours in (1, 24):
            params = Q.default_params(name, tenant="t", now=NOW, hours=hours)
            texts.append(Q.bind(name, params)[0])
            for choice, options in q.choices.items():
                texts += [Q.bind(name, {**params, choice: value})[0] for value in options]
    return texts


def test_every_query_takes_parameters_not_text() -> None:
    # no Python formatting placeholders survive in the SQL (only ClickHouse {name:Type} parameters),
    # and no fragment ($NAME) or grain (@NAME@) token is left unexpanded
    for text in _every_text():
        for placeholder in re.findall(r"\{[^{}]*\}", text):
            assert re.fullmatch(r"\{[a-z_]+:[A-Za-z0-9(), ']+\}", placeholder), placeholder
        assert not re.search(r"\$[A-Z_]{2,}|@[A-Z_]+@", text), text


def _dashboard_modules() -> dict[str, ast.Module]:
    return {p.name: ast.parse(p.read_text(), str(p)) for p in sorted(DASHBOARD.glob("*.py"))}


def test_the_dashboard_defines_no_sql() -> None:
    sql = re.compile(r"\b(SELECT|INSERT|ALTER|DELETE)\b[\s\S]+\b(FROM|INTO|TABLE)\b", re.I)
    found = [
        (module, node.lineno, node.value[:60])
        for module, tree in _dashboard_modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and sql.search(node.value)
    ]
    assert found == []


def test_every_dashboard_query_is_a_catalog_name() -> None:
    used: dict[str, set[str]] = {}
    for module, tree in _dashboard_modules().items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "data"
                    and node.func.attr in ("frame", "rows", "cached_frame")):
                first = node.args[0]
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (module, node.lineno)
                used.setdefault(first.value, set()).add(module)
    assert set(used) <= set(Q.QUERIES), sorted(set(used) - set(Q.QUERIES))
    assert set(used) == set(Q.DASHBOARD_QUERIES)
    assert len(Q.DASHBOARD_QUERIES) == len(set(Q.DASHBOARD_QUERIES))
