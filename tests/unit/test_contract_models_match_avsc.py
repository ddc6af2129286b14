"""The .avsc files are the source of truth: every model must agree with its record on field
names, order, types, optionality, defaults and enum symbols. The negative cases prove the
comparison catches each kind of drift."""

from __future__ import annotations

import copy

import pytest
from pydantic import BaseModel

from tripwire.schemas import ModelCall, RunSummary, default_catalog
from tripwire.schemas.codec import DEFAULT_MODELS
from tripwire.schemas.conformance import _named, check_models, compare_model, records_in

pytestmark = pytest.mark.unit

PII_FIELDS = {
    "tripwire.events.RunStarted": {"principal"},
    "tripwire.events.ModelCall": {"principal", "prompt", "completion"},
    "tripwire.events.ToolCall": {"principal", "args"},
    "tripwire.events.ApprovalDecision": {"principal", "approver", "reason"},
    "tripwire.events.RunFinished": {"principal"},
    "tripwire.runs.RunSummary": {"principal"},
    "tripwire.metrics.WindowStats": set(),
    "tripwire.alerts.Alert": set(),
    "tripwire.killswitch.KillSwitchCommand": {"issued_by"},
    "tripwire.dlq.DeadLetter": {"key", "value"},
}


def test_every_model_agrees_with_its_current_schema():
    assert check_models(default_catalog(), DEFAULT_MODELS) == []


def test_every_record_has_a_namespace_and_every_field_a_doc():
    for sv in default_catalog().all():
        for full, rec in records_in(sv.schema).items():
            assert rec.get("namespace", "").startswith("tripwire."), full
            assert rec.get("doc"), full
            undocumented = [f["name"] for f in rec["fields"] if not f.get("doc", "").strip()]
            assert undocumented == [], (sv.path, full)


def test_pii_fields_are_annotated_and_nothing_else_is():
    seen = {}
    for sv in default_catalog().all():
        for full, rec in records_in(sv.schema).items():
            seen[full] = {f["name"] for f in rec["fields"] if f.get("pii") is True}
    assert seen == PII_FIELDS


def _record(model: type[BaseModel]):
    schema = copy.deepcopy(default_catalog().current(model.SCHEMA_NAME).schema)
    named: dict = {}
    _named(schema, named)
    return records_in(schema)[model.AVRO_NAME], named


def _field(rec, name):
    return next(f for f in rec["fields"] if f["name"] == name)


def _mut_rename(rec, named):
    _field(rec, "provider")["name"] = "provider_name"


def _mut_type(rec, named):
    _field(rec, "input_tokens")["type"] = "double"


def _mut_int_vs_string(rec, named):
    _field(rec, "request_model")["type"] = "long"


def _mut_make_optional(rec, named):
    f = _field(rec, "provider")
    f["type"], f["default"] = ["null", "string"], None


def _mut_make_required(rec, named):
    f = _field(rec, "response_model")
    f["type"] = "string"
    del f["default"]


def _mut_drop_default(rec, named):
    del _field(rec, "input_tokens")["default"]


def _mut_change_default(rec, named):
    _field(rec, "operation_name")["default"] = "embeddings"


def _mut_enum_symbol(rec, named):
    named["CallStatus"]["symbols"] = ["ok", "error", "timeout", "blocked", "refused"]


def _mut_timestamp_to_long(rec, named):
    _field(rec, "ts_start")["type"] = "long"


def _mut_reorder(rec, named):
    rec["fields"][0], rec["fields"][1] = rec["fields"][1], rec["fields"][0]


def _mut_add_field(rec, named):
    rec["fields"].append({"name": "extra", "type": ["null", "string"], "default": None, "doc": "x"})


def _mut_drop_field(rec, named):
    rec["fields"] = [f for f in rec["fields"] if f["name"] != "finish_reason"]


@pytest.mark.parametrize(
    "mutate",
    [
        _mut_rename,
        _mut_type,
        _mut_int_vs_string,
        _mut_make_optional,
        _mut_make_required,
        _mut_drop_default,
        _mut_change_default,
        _mut_enum_symbol,
        _mut_timestamp_to_long,
        _mut_reorder,
        _mut_add_field,
        _mut_drop_field,
    ],
)
def test_drift_is_detected(mutate):
    rec, named = _record(ModelCall)
    assert compare_model(ModelCall, rec, named) == []
    mutate(rec, named)
    problems = compare_model(ModelCall, rec, named)
    assert len(problems) >= 1


def test_container_drift_is_detected():
    rec, named = _record(RunSummary)
    assert compare_model(RunSummary, rec, named) == []
    _field(rec, "missing_seqs")["type"] = {"type": "array", "items": "string"}
    _field(rec, "cost_by_model")["type"] = {"type": "map", "values": "long"}
    problems = compare_model(RunSummary, rec, named)
    assert [p.split(":")[0] for p in problems] == [
        "RunSummary vs RunSummary.cost_by_model",
        "RunSummary vs RunSummary.missing_seqs",
    ]


def test_model_side_drift_is_detected():
    class Drifted(ModelCall):
        surprise: int = 0

    rec, named = _record(ModelCall)
    problems = compare_model(Drifted, rec, named)
    assert len(problems) == 1 and "surprise" in problems[0]
