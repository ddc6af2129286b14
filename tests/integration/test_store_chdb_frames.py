"""``ChdbStore.query_df`` must not go through chdb's own pandas output, which hangs (holding the GIL,
so the whole dashboard process stops answering) on arrays of tuples, as the Cost page's budget
query returns. Run in a subprocess so a regression fails by timeout instead of hanging the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
import sys
from tripwire.sinks.store import open_store
store = open_store("chdb://" + sys.argv[1] + "?database=frames")
df = store.query_df(
    "SELECT number % 2 AS k, groupArray(200)(tuple(toString(number), toDateTime64(now64(6), 6, 'UTC'), 'w',"
    " toNullable(1.5))) AS arr, max(toDateTime64(now64(6), 6, 'UTC')) AS ts FROM numbers({n:UInt32})"
    " GROUP BY k ORDER BY k",
    {"n": 10},
)
assert list(df.columns) == ["k", "arr", "ts"], df.columns
assert [len(a) for a in df["arr"]] == [5, 5]
assert str(df["ts"].dt.tz) == "UTC"
empty = store.query_df("SELECT number AS n FROM numbers(0)")
assert list(empty.columns) == ["n"] and len(empty) == 0
print("ok")
"""


def test_query_df_of_arrays_of_tuples_returns(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"
