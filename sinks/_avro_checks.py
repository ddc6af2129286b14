"""The validating sink's checks as SQL over ClickHouse-decoded Avro (the validating fast path).

Validating, the sink lets ClickHouse decode an Avro batch into a temporary staging table (Memory
engine; timestamps and integers kept as the Avro ``long``s they are, so nothing wraps or clamps),
asks it which rows *may* break a rule, and inserts the others into the event table with one
``INSERT ... SELECT``. The rules are those of the Python path: the models' constraints
(:func:`tripwire.schemas.fieldchecks.field_checks`, compiled from the models' own metadata: string
shapes, numeric ranges, finite floats, the model validators) plus the event limits
(:func:`tripwire.schemas.check_event`, the same ``EventLimits``, passed as query parameters), plus
what fastavro enforces and ClickHouse does not (valid UTF-8).

The SQL is a conservative filter, never the judge: a row it flags is decoded by the Python path,
which gives the verdict and the reason (the same function, so the same reason strings as a batch
decoded in Python). A flagged row the Python path accepts (e.g. ``args`` with many brackets but
shallow nesting, an identifier with a character next to the control range, a time near a window
edge) is inserted with the others, in the same ``INSERT ... SELECT``; the others become dead
letters. What matters is that an unflagged row is one the Python path accepts:
``tests/integration/test_sink_sql_checks.py`` feeds hostile events of every rule through both
paths and compares. Anything this module cannot express (a model rule it does not know, an Avro
type it does not map) gives no plan, and that record's batches go through the Python path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tripwire.schemas import ApprovalDecision, EventLimits, ModelCall, RunFinished, RunStarted, ToolCall
from tripwire.schemas.fieldchecks import field_checks
from tripwire.schemas.limits import CONTROL_CHARS, ID_FIELDS, TEXT_FIELDS, TOKEN_FIELDS
from tripwire.sinks._avro_fast import RECEIVED, AvroBranch

MODELS: dict[str, type[BaseModel]] = {
    "tripwire.events.ModelCall": ModelCall,
    "tripwire.events.ToolCall": ToolCall,
    "tripwire.events.RunStarted": RunStarted,
    "tripwire.events.ApprovalDecision": ApprovalDecision,
    "tripwire.events.RunFinished": RunFinished,
}
# The models' @model_validator rules (fieldchecks.MODEL_RULES, by the plain-Python function's name) as "broken" SQL
_RULES = {"_ts_order": "ts_end < ts_start", "_first": "seq != 0", "_last": "last_seq != seq"}
_PRIMITIVE = {"string": "String", "long": "Int64", "int": "Int32", "double": "Float64", "float": "Float32",
              "boolean": "Bool"}  # fmt: skip
_MARGIN_US = 1_000_000  # time-window edges: rows this close to one are flagged and judged in Python
_KEY = "concat(src_topic, ':', toString(src_partition), ':', toString(src_offset))"  # StagePlan.row_key


class Unsupported(Exception):
    """A record or rule this module cannot express as SQL (its batches take the Python path)."""


def _ch_type(t: Any) -> tuple[str, bool]:
    """(ClickHouse staging type, is a timestamp-micros) of an Avro field type."""
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        if len(rest) != 1 or len(t) != 2:
            raise Unsupported(f"union {t!r}")
        inner, ts = _ch_type(rest[0])
        return f"Nullable({inner})", ts
    if isinstance(t, dict):
        if t.get("logicalType") == "timestamp-micros" and t.get("type") == "long":
            return "Int64", True
        if t.get("type") == "enum":
            return "String", False
        if "logicalType" in t:
            raise Unsupported(f"logical type {t['logicalType']!r}")
        return _ch_type(t["type"])
    if isinstance(t, str) and t in _PRIMITIVE:
        return _PRIMITIVE[t], False
    raise Unsupported(f"type {t!r}")


def _num(v: float) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise Unsupported(f"bound {v!r}")
    return repr(float(v)) if isinstance(v, float) else str(int(v))


@dataclass(frozen=True, slots=True)
class StagePlan:
    """The SQL of one writer record: its staging table, its "may be bad" test, its insert."""

    stage: str  # temporary table name
    create: str  # CREATE TEMPORARY TABLE IF NOT EXISTS ...
    bad: str  # a UInt8 expression: 1 = the Python path must judge this row
    select: str  # SELECT <table columns> FROM stage

    def insert_select(self, excluded: bool) -> str:
        """What the batch inserts: every staged row, or (``excluded``) all but the rows listed in the
        ``{excluded:Array(String)}`` parameter (keys of :meth:`row_key`): the flagged rows the
        Python path rejected and the repeats of stored event ids. The review query already evaluated
        the checks; they are not evaluated again."""
        return f"{self.select} WHERE NOT has({{excluded:Array(String)}}, {_KEY})" if excluded else self.select

    @staticmethod
    def row_key(topic: str, partition: int, offset: int) -> str:
        """A staged row's source position, as the ``excluded`` parameter lists it."""
        return f"{topic}:{partition}:{offset}"

    def review_sql(self, table: str) -> str:
        """The one question asked of a staged batch before its insert: the rows the Python path must
        judge (``bad``) and the rows the event-id guard (``sinks/_event_ids.py``) must look at, i.e. those
        whose ``event_id`` occurs more than once in the batch or is already in ``table`` within the
        batch's ``ts_start`` range. Each with its position, its id, whether that id is stored, and
        whether the row is flagged. Only those rows come back (none in a batch of good, new events),
        so no id crosses to Python to be looked up."""
        stage = self.stage
        lo = f"fromUnixTimestamp64Micro((SELECT min(ts_start) FROM {stage}), 'UTC')"
        hi = f"fromUnixTimestamp64Micro((SELECT max(ts_start) FROM {stage}), 'UTC')"
        stored = (
            f"(SELECT event_id FROM {table} WHERE ts_start >= {lo} AND ts_start <= {hi}"
            f" AND event_id IN (SELECT event_id FROM {stage}))"
        )
        repeated = f"(SELECT event_id FROM {stage} GROUP BY event_id HAVING count() > 1)"
        return (
            f"SELECT src_topic, src_partition, src_offset, event_id, event_id IN {stored} AS tw_stored,"
            f" {self.bad} AS tw_flagged FROM {stage} WHERE tw_flagged OR tw_stored OR event_id IN {repeated}"
        )


def limit_params(limits: EventLimits) -> dict[str, Any]:
    """The limits as query parameters of the ``bad`` expression."""
    return {
        "lim_id": limits.max_id_chars,
        "lim_text": limits.max_text_chars,
        "lim_nest": limits.max_nesting,
        "lim_tok": limits.max_tokens_per_call,
        "lim_cost": float(limits.max_cost_per_call_usd),
        "lim_dur_us": max(0, int(limits.max_call_duration_s * 1e6) - 1000),
        "lim_seq": limits.max_seq,
        "lim_run_cost": float(limits.max_cost_per_run_usd),
        "lim_run_tok": limits.max_tokens_per_run,
        "lim_age_us": int(limits.max_age_days * 86_400e6) - _MARGIN_US,
        "lim_ahead_us": max(0, int(limits.max_ahead_s * 1e6) - _MARGIN_US),
        "control": CONTROL_CHARS,
    }


def _bad_terms(record: dict[str, Any], model: type[BaseModel], types: dict[str, str]) -> list[str]:
    checks = field_checks(model)
    if checks is None:
        raise Unsupported(f"{model.__name__} keeps pydantic validation")
    fields = {f["name"] for f in record["fields"]}
    if set(model.model_fields) - fields:  # a field the writer lacks: its default is not staged
        raise Unsupported(f"{model.__name__}: fields missing from the writer record")
    terms: list[str] = []

    def opt(name: str, cond: str) -> str:
        return f"({name} IS NOT NULL AND ({cond}))" if types[name].startswith("Nullable") else f"({cond})"

    for name, t in types.items():  # fastavro refuses a string that is not UTF-8; ClickHouse stores its bytes
        if t in ("String", "Nullable(String)") and name != "src_topic":
            terms.append(opt(name, f"NOT isValidUTF8({name})"))
    for name in checks.nonempty:
        terms.append(f"empty({name})")
    for st in checks.strings:
        conds = []
        if st.min_len is not None:
            conds.append(f"lengthUTF8({st.name}) < {st.min_len}")
        if st.max_len is not None:
            conds.append(f"lengthUTF8({st.name}) > {st.max_len}")
        if st.pattern is not None:
            p = st.pattern.pattern
            if not p.endswith(r"\Z") or r"\Z" in p[:-2] or "(?" in p:
                raise Unsupported(f"{st.name}: pattern {p!r}")
            p = p[:-2] + "$"  # RE2's '$' (not multi-line) is the end of the text: Python's '\Z'
            conds.append(f"NOT match({st.name}, '{_sql_str(p)}')")
        terms.append(opt(st.name, " OR ".join(conds)))
    for c in checks.numbers:
        ok = []
        if c.lo is not None:
            ok.append(f"{_num(c.lo)} {'<' if c.lo_open else '<='} {c.name}")
        if c.hi is not None:
            ok.append(f"{c.name} {'<' if c.hi_open else '<='} {_num(c.hi)}")
        if c.finite:
            ok.append(f"isFinite({c.name})")
        terms.append(opt(c.name, f"NOT ({' AND '.join(ok)})"))
    for rule in checks.rules:
        sql = _RULES.get(rule.__name__)
        if sql is None:
            raise Unsupported(f"model rule {rule.__name__}")
        terms.append(f"({sql})")
    # the event limits (check_event), each ceiling a parameter
    for name in ID_FIELDS:
        if name in types:
            terms.append(opt(name, f"lengthUTF8({name}) > {{lim_id:UInt64}} OR match({name}, {{control:String}})"))
    for name in TEXT_FIELDS:
        if name in types:
            terms.append(opt(name, f"lengthUTF8({name}) > {{lim_text:UInt64}}"))
    if "args" in types:  # the same pre-test as check_event; the depth itself is computed in Python
        nest = "countSubstrings(args, '[') + countSubstrings(args, '{') > {lim_nest:UInt64}"
        terms.append(opt("args", nest))
    for name in ("seq", "last_seq", "max_steps", "max_tool_calls"):
        if name in types:
            terms.append(opt(name, f"{name} > {{lim_seq:Int64}}"))
    for name in TOKEN_FIELDS:
        if name in types:
            terms.append(opt(name, f"{name} > {{lim_tok:Int64}}"))
    if "cost_usd" in types:
        terms.append(opt("cost_usd", "NOT (0 <= cost_usd AND cost_usd <= {lim_cost:Float64})"))
    if "max_cost_usd" in types:
        terms.append(opt("max_cost_usd", "NOT (0 <= max_cost_usd AND max_cost_usd <= {lim_run_cost:Float64})"))
    for name in ("max_prompt_tokens", "max_completion_tokens"):
        if name in types:
            terms.append(opt(name, f"{name} > {{lim_run_tok:Int64}}"))
    if "ts_start" in types and "ts_end" in types:
        for name in ("ts_start", "ts_end"):
            terms.append(
                opt(name, f"{name} < {RECEIVED} - {{lim_age_us:Int64}} OR {name} > {RECEIVED} + {{lim_ahead_us:Int64}}")
            )
        terms.append("(ts_end - ts_start > {lim_dur_us:Int64})")
    return terms


def _sql_str(s: str) -> str:
    """A ClickHouse string literal body for text from the models' own metadata (not user input)."""
    return s.replace("\\", "\\\\").replace("'", "\\'")


def stage_plan(branch: AvroBranch, owner: str, *, checks: bool = True) -> StagePlan:
    """The staging SQL of one writer record for one sink (``owner``: letters and digits, so that two
    sinks sharing a connection never share a staging table); raises ``Unsupported``. ``checks=False``
    (trusted mode): nothing is flagged, the staging serves the event-id guard alone."""
    model = MODELS.get(branch.name)
    if model is None and checks:
        raise Unsupported(f"no model for {branch.name}")
    record = json.loads(branch.schema_json)
    types: dict[str, str] = {}
    stamps: set[str] = set()
    for f in record["fields"]:
        t, ts = _ch_type(f["type"])
        types[f["name"]] = t
        if ts:
            stamps.add(f["name"])
    if checks and RECEIVED not in types:
        raise Unsupported("the branch does not carry the receipt time")
    if types.get("event_id") != "String" or "ts_start" not in stamps:  # the event-id guard reads both
        raise Unsupported("no event_id / ts_start")
    if not owner.isalnum():
        raise Unsupported(f"owner {owner!r}")
    stage = f"tripwire_stage_{owner}_{hashlib.sha256(branch.schema_json).hexdigest()[:16]}"
    create = (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ("
        + ", ".join(f"{n} {t}" for n, t in types.items())
        + ") ENGINE = Memory"
    )
    bad = "ifNull(" + " OR ".join(_bad_terms(record, model, types)) + ", 1)" if model is not None and checks else "0"
    cols = [f"fromUnixTimestamp64Micro({c}, 'UTC')" if c in stamps else c for c in branch.columns]
    return StagePlan(stage, create, bad, f"SELECT {', '.join(cols)} FROM {stage}")
