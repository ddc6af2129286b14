"""Schema evolution: every version is backward and forward compatible with all earlier ones,
and the v2 fixture (an added optional field) round-trips between old and new readers."""

from __future__ import annotations

import copy
import io
import json
import shutil
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from typer.testing import CliRunner

from tripwire.schemas import AvroCodec, DecodeError, ModelCall, SchemaError, default_catalog, encode, to_record
from tripwire.schemas.catalog import SHIPPED_ROOT, SchemaCatalog, check_lock, update_lock
from tripwire.schemas.codec import DEFAULT_MODELS
from tripwire.schemas.compat import can_read, check_catalog
from tripwire.schemas.conformance import check_models
from tripwire.schemas.samples import sample_run

pytestmark = pytest.mark.unit

FIXTURE_ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "contract_schemas"
V1_EVENTS = json.loads((SHIPPED_ROOT / "v1" / "events.avsc").read_text())


class ModelCallV2(ModelCall):
    """The new reader's model: v1 plus the optional field the fixture adds."""

    server_address: str | None = None


V2_MODELS = tuple(ModelCallV2 if m is ModelCall else m for m in DEFAULT_MODELS)


def _catalog(**pins):
    return SchemaCatalog([SHIPPED_ROOT, FIXTURE_ROOT], pins=pins or None)


def test_every_shipped_version_is_compatible_with_all_earlier_ones():
    results = check_catalog(default_catalog())
    assert all(r.ok for r in results), [r for r in results if not r.ok]


def test_fixture_v2_is_backward_and_forward_compatible():
    results = check_catalog(_catalog())
    pairs = [(r.name, r.old, r.new, r.ok) for r in results]
    assert pairs == [("events", 1, 2, True), ("run_summary", 1, 2, True)]  # fixture events v2, shipped run_summary v2


def test_v2_model_agrees_with_v2_schema():
    assert check_models(_catalog(), V2_MODELS) == []
    # and the v1 model does not (the check sees the added field)
    assert [p for p in check_models(_catalog(), DEFAULT_MODELS) if "server_address" in p] != []


def test_new_reader_reads_old_data():
    new = AvroCodec(_catalog(), models=V2_MODELS)
    for e in sample_run(5, steps=4):
        old_bytes = encode(e)  # written by the shipped v1 writer
        back = new.decode(old_bytes)
        assert back.__class__.__name__ == ("ModelCallV2" if isinstance(e, ModelCall) else type(e).__name__)
        rec = to_record(back)
        if isinstance(e, ModelCall):
            assert rec.pop("server_address") is None  # filled from the reader's default
        assert rec == to_record(e)


def test_old_reader_reads_new_data():
    new = AvroCodec(_catalog(), models=V2_MODELS)
    old = AvroCodec(_catalog(events=1))  # knows the v2 writer schema, reads as v1
    for e in sample_run(6, steps=4):
        v2 = ModelCallV2(**to_record(e), server_address="api.openai.com") if isinstance(e, ModelCall) else e
        data = new.encode(v2)
        assert data[2:10] == _catalog().current("events").fingerprint  # really written with v2
        back = old.decode(data)
        assert type(back) is type(e)
        assert back == e  # server_address dropped by Avro resolution


def test_reader_without_the_writer_version_reports_unknown_fingerprint():
    data = AvroCodec(_catalog(), models=V2_MODELS).encode(ModelCallV2(**to_record(sample_run(0)[1])))
    with pytest.raises(DecodeError) as e:
        AvroCodec().decode(data)  # shipped catalog only: v2 is not shipped
    assert e.value.reason == "unknown_fingerprint"


def _events_with(mutate):
    s = copy.deepcopy(V1_EVENTS)
    mutate(next(r for r in s if r["name"] == "ModelCall"), s)
    return s


def _add_required(rec, s):
    rec["fields"].append({"name": "region", "type": "string", "doc": "x"})


def _drop_required(rec, s):
    rec["fields"] = [f for f in rec["fields"] if f["name"] != "provider"]


def _string_to_long(rec, s):
    next(f for f in rec["fields"] if f["name"] == "request_model")["type"] = "long"


def _long_to_int(rec, s):
    next(f for f in rec["fields"] if f["name"] == "input_tokens")["type"] = "int"


def _add_status_symbol(rec, s):
    enum = next(f for f in rec["fields"] if f["name"] == "status")["type"]
    enum["symbols"] = [*enum["symbols"], "cancelled"]


def _rename_record(rec, s):
    rec["name"] = "LlmCall"


@pytest.mark.parametrize(
    ("mutate", "backward_ok", "forward_ok"),
    [
        (_add_required, False, True),  # new reader cannot fill region from old data; old reader ignores it
        (_drop_required, True, False),  # old reader needs provider, new data lacks it
        (_string_to_long, False, False),
        (_long_to_int, False, True),  # old long data does not narrow to int; new int data promotes to long
        (_add_status_symbol, True, False),  # CallStatus has no enum default
        (_rename_record, False, False),
    ],
)
def test_incompatible_changes_are_detected_and_agree_with_fastavro(mutate, backward_ok, forward_ok):
    new = _events_with(mutate)
    assert (can_read(new, V1_EVENTS) == []) is backward_ok
    assert (can_read(V1_EVENTS, new) == []) is forward_ok
    # cross-check the backward verdict with fastavro's own resolution on real data
    e = sample_run(0)[1]
    rec = ("tripwire.events.ModelCall", to_record(e))
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(V1_EVENTS), rec)
    buf.seek(0)
    try:
        schemaless_reader(buf, parse_schema(V1_EVENTS), parse_schema(new))
        read_ok = True
    except Exception:
        read_ok = False
    assert read_ok is backward_ok


def test_enum_default_makes_new_symbols_forward_compatible():
    old = [copy.deepcopy(r) for r in V1_EVENTS]
    new = _events_with(lambda rec, s: None)
    mc_new = next(r for r in new if r["name"] == "ModelCall")
    cost = next(f for f in mc_new["fields"] if f["name"] == "cost_source")["type"]
    cost["symbols"] = [*cost["symbols"], "estimated"]
    assert can_read(old, new) == []  # CostSource has "default": "unknown"


def test_cli_check_passes_on_shipped_and_fixture(tmp_path):
    from tripwire.cli import app

    r = CliRunner().invoke(app, ["schemas", "check", "--root", str(FIXTURE_ROOT)])
    assert r.exit_code == 0, r.output
    assert "events v1 -> v2: ok" in r.output
    assert r.output.strip().endswith("compatible")


def test_cli_check_fails_on_an_incompatible_version(tmp_path):
    from tripwire.cli import app

    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "events.avsc").write_text(json.dumps(_events_with(_add_required)))
    r = CliRunner().invoke(app, ["schemas", "check", "--root", str(tmp_path)])
    assert r.exit_code == 1, r.output
    assert "events v1 -> v2: INCOMPATIBLE" in r.output
    assert "ModelCall.region: reader field is missing from the writer and has no default" in r.output
    assert "FAILED: 1 problem(s)" in r.output


def test_shipped_versions_match_the_fingerprint_lock():
    assert check_lock() == []


def test_lock_catches_edited_deleted_and_unlocked_versions(tmp_path):
    root = tmp_path / "avro"
    shutil.copytree(SHIPPED_ROOT, root)
    lock = root / "fingerprints.json"
    assert check_lock(root, lock) == []

    (root / "v2").mkdir(exist_ok=True)  # the shipped root may have a v2 already (run_summary)
    shutil.copy(FIXTURE_ROOT / "v2" / "events.avsc", root / "v2" / "events.avsc")
    problems = check_lock(root, lock)
    assert len(problems) == 1 and problems[0].startswith("events v2 (")
    assert update_lock(root, lock) == [f"events v2 {_catalog().current('events').fingerprint.hex()}"]
    assert check_lock(root, lock) == []

    edited = _events_with(_add_required)
    (root / "v1" / "events.avsc").write_text(json.dumps(edited))
    problems = check_lock(root, lock)
    assert len(problems) == 1 and "events v1 changed after it was shipped" in problems[0]
    with pytest.raises(SchemaError, match="ship a new version"):
        update_lock(root, lock)

    (root / "v1" / "events.avsc").write_text(json.dumps(V1_EVENTS))
    (root / "v1" / "alert.avsc").unlink()
    assert check_lock(root, lock) == [
        f"alert v1 was shipped (fingerprint {default_catalog().current('alert').fingerprint.hex()}) "
        "but its file is gone"
    ]
