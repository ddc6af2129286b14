"""The faust runtime self-check (processors/_faust_check.py): it passes on the pinned faust and
aiokafka, and stops the worker, naming the symbol and the supported versions, when a symbol is
missing or changed or another version is installed. The libraries themselves are never altered:
the failing cases check fake owners."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tripwire.core.errors import ConfigError
from tripwire.processors import FaustRuntimeError
from tripwire.processors import _faust_check as fc
from tripwire.processors import _faust_fixes as fx

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


class _Owner:
    """A stand-in for a faust class, as a future release might shape it."""

    _flag: bool = False
    id_format = "{group_id}-{partition}"

    def __init__(self) -> None:
        self._made_in_init = 1

    async def on_rebalance(self, assigned: Any, revoked: Any, newly_assigned: Any) -> None:
        return None

    async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
        return True


def _fake(owner: str) -> Any:
    if owner == "fake:Owner":
        return _Owner
    raise ImportError(f"No module named {owner.partition(':')[0]!r}")


def test_the_installed_runtime_passes() -> None:
    fc.check_runtime()  # the pinned versions, every row present with its parameter names
    assert [fc.check_member(m) for m in fc.MEMBERS] == [None] * len(fc.MEMBERS)


def test_every_fix_target_has_a_row() -> None:
    rows = {(m.owner, m.attribute) for m in fc.MEMBERS}
    assert {(f.owner, f.attribute) for f in fx.FIXES} <= rows


def test_supported_versions_are_the_pyproject_pins() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["pipeline"]
    pins = dict(m.groups() for d in deps if (m := re.fullmatch(r"([\w-]+)==([\w.]+)", d)))
    assert pins == fc.SUPPORTED


def test_matching_fake_owner_passes() -> None:
    rows = (
        fc.Member("fake:Owner", "on_rebalance", ("self", "assigned", "revoked", "newly_assigned"), "t"),
        fc.Member("fake:Owner", "_flag", None, "t"),
        fc.Member("fake:Owner", "_made_in_init", None, "t"),
        fc.Member("fake:Owner", "id_format", None, "t", "{group_id}-{partition}"),
    )
    fc.check_runtime(rows, resolve=_fake)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            fc.Member("fake:Owner", "_resume_streams", ("self", "generation_id"), "t"),
            "fake:Owner._resume_streams: no such method",
        ),
        (
            fc.Member("fake:Owner", "_commit_offsets", ("self", "offsets", "start_new_txn"), "t"),
            "fake:Owner._commit_offsets: parameters ('self', 'offsets', 'start_new_transaction'), "
            "expected ('self', 'offsets', 'start_new_txn')",
        ),
        (fc.Member("fake:Owner", "_trn_locks", None, "t"), "fake:Owner._trn_locks: no such attribute"),
        (
            fc.Member("fake:Owner", "id_format", None, "t", "{group_id}-{tpg.group}-{tpg.partition}"),
            "fake:Owner.id_format: '{group_id}-{partition}', expected '{group_id}-{tpg.group}-{tpg.partition}'",
        ),
        (
            fc.Member("gone:Owner", "on_rebalance", ("self",), "t"),
            "gone:Owner.on_rebalance: gone:Owner cannot be imported (No module named 'gone')",
        ),
    ],
)
def test_a_missing_or_changed_symbol_stops_the_worker(row: fc.Member, expected: str) -> None:
    ok = fc.Member("fake:Owner", "on_rebalance", ("self", "assigned", "revoked", "newly_assigned"), "t")
    with pytest.raises(FaustRuntimeError) as info:
        fc.check_runtime((ok, row), resolve=_fake)
    assert isinstance(info.value, ConfigError)
    assert str(info.value) == (
        f"the faust runtime differs from the one the processors were written for: {expected} "
        "(supported: faust-streaming==0.15.3, aiokafka==0.14.0)"
    )


def test_another_version_stops_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {"faust-streaming": "0.15.3", "aiokafka": "0.15.0"}
    monkeypatch.setattr(fc, "_installed", installed.get)
    with pytest.raises(FaustRuntimeError) as info:
        fc.check_runtime()
    assert str(info.value) == (
        "unsupported faust runtime: installed aiokafka 0.15.0; the processors' faust fixes support exactly "
        "faust-streaming==0.15.3, aiokafka==0.14.0 (pip install 'tripwire[pipeline]')"
    )


def test_apply_checks_before_it_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fx, "_applied", False)
    monkeypatch.setattr(fc, "MEMBERS", (fc.Member("fake:Owner", "_gone", ("self",), "t"),))
    owner, attribute = fx.FIXES[0].owner, fx.FIXES[0].attribute
    before = getattr(fx.resolve(owner), attribute)
    with pytest.raises(FaustRuntimeError, match=r"fake:Owner\._gone: .*cannot be imported"):
        fx.apply()
    assert getattr(fx.resolve(owner), attribute) is before  # nothing patched
    assert fx._applied is False
