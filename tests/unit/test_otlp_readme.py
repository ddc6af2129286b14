"""schemas/README.md's OTLP dialect table is the receiver's FIELDS table, cell for cell."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tripwire.producers.otlp import FIELDS

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "schemas" / "README.md"


def test_dialect_table_matches_fields() -> None:
    rows: dict[str, tuple[tuple[str, ...], ...]] = {}
    for line in README.read_text().splitlines():
        m = re.match(r"^\| \*\*([a-z_]+)\*\* \| (.*?) \| (.*?) \| (.*?) \|", line)
        if m:
            rows[m.group(1)] = tuple(tuple(re.findall(r"`([^`]+)`", m.group(i))) for i in (2, 3, 4))
    expected = {k: (v["genai"], v["openinference"], v["traceloop"]) for k, v in FIELDS.items()}
    assert rows == expected
