"""The OpenTelemetry mapping table in schemas/README.md matches the ``otel`` annotations of the
current .avsc files, and covers the attributes the issue names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tripwire.schemas import default_catalog
from tripwire.schemas.conformance import records_in

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "schemas" / "README.md"
REQUIRED = {
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.agent.id",
    "gen_ai.agent.version",
    "gen_ai.conversation.id",
    "error.type",
}


def _table() -> dict[str, str]:
    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r"^\| `([a-z_.]+)` \| `([a-z_]+)` \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def _annotations() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name in default_catalog().names():
        for rec in records_in(default_catalog().current(name).schema).values():
            for f in rec["fields"]:
                if "otel" in f:
                    out.setdefault(f["otel"], set()).add(f["name"])
    return out


def test_table_matches_annotations():
    ann = _annotations()
    assert all(len(fields) == 1 for fields in ann.values()), ann
    assert _table() == {attr: next(iter(fields)) for attr, fields in ann.items()}


def test_required_attributes_are_mapped():
    assert set(_table()) >= REQUIRED
