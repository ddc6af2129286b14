"""The start-up self-check of the faust runtime the processors patch and reach into.

The processors replace faust methods (``_faust_fixes``), override one (``worker.run_worker``) and
use private members of faust and aiokafka (``agents.Runtime``, ``tables.store_write``, the fixes
themselves). A release that
renames one of them would make a patch silently do nothing, or fail deep inside a rebalance.
:func:`check_runtime` runs when the worker's app is built, before any patch is applied: the
installed versions must be the pinned ones (:data:`SUPPORTED`, the same as ``pyproject.toml``)
and every row of :data:`MEMBERS` must exist with the expected parameter names; otherwise the
worker stops with :class:`FaustRuntimeError`, which names the symbol and the supported versions.

Add a row to :data:`MEMBERS` for every new patch target or private use (a unit test checks that
every fix in ``_faust_fixes.FIXES`` has one).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NamedTuple

from tripwire.processors.errors import FaustRuntimeError

# distribution -> the one release the fixes were written and tested for (pinned in pyproject.toml)
SUPPORTED: dict[str, str] = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


class Member(NamedTuple):
    """``owner`` (``module:Class``) has ``attribute``: a method with exactly these parameter names,
    or (``params`` None) a data attribute (class-level, annotated, or set as ``self.x`` in
    ``__init__``), equal to ``value`` when one is given."""

    owner: str
    attribute: str
    params: tuple[str, ...] | None
    used_by: str  # where the processors rely on it
    value: object = None


_FAUST_CONSUMER = "faust.transport.consumer"
_FAUST_AIOKAFKA = "faust.transport.drivers.aiokafka"
_SIG_REBALANCE = ("self", "assigned", "revoked", "newly_assigned")

MEMBERS: tuple[Member, ...] = (
    # patched by _faust_fixes.FIXES
    Member(f"{_FAUST_AIOKAFKA}:AIOKafkaConsumerThread", "_highwaters", ("self", "partitions"), "fix 1"),
    Member(f"{_FAUST_CONSUMER}:TransactionManager", "on_rebalance", _SIG_REBALANCE, "fixes 2, 3, 6"),
    Member("faust.tables.recovery:Recovery", "_resume_streams", ("self", "generation_id"), "fix 4"),
    Member("faust.tables.recovery:Recovery", "on_recovery_completed", ("self", "generation_id"), "fix 4"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "_commit_offsets", ("self", "offsets", "start_new_transaction"), "fix 5"),
    Member(
        f"{_FAUST_AIOKAFKA}:Producer",
        "commit_transactions",
        ("self", "tid_to_offset_map", "group_id", "start_new_transaction"),
        "fix 7",
    ),
    Member(f"{_FAUST_CONSUMER}:Consumer", "wait_first", ("self", "coros", "timeout"), "fix 8"),
    Member(
        "faust.tables.recovery:Recovery",
        "_build_highwaters",
        ("self", "consumer", "tps", "destination", "title"),
        "fix 9",
    ),
    Member(f"{_FAUST_CONSUMER}:Consumer", "_drain_messages", ("self", "fetcher"), "fix 10"),
    # called or read by the fixes and the runtime
    Member(f"{_FAUST_CONSUMER}:Consumer", "suspend_flow", None, "fix 8"),
    Member("mode.services:Service", "_stopped", None, "fix 8"),
    Member("mode.services:Service", "_crashed", None, "fix 8"),
    Member("mode.services:WaitResults", "done", None, "fix 8"),
    Member(f"{_FAUST_AIOKAFKA}:AIOKafkaConsumerThread", "_ensure_consumer", ("self",), "fix 1"),
    Member("aiokafka:AIOKafkaConsumer", "end_offsets", ("self", "partitions"), "fix 1"),
    Member("faust.tables.recovery:Recovery", "active_offsets", None, "fix 9"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "getmany", ("self", "timeout"), "fix 10"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "_read_offset", None, "fix 10"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "_commit_every", None, "fix 10"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "_n_acked", None, "fix 10"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "_add_gap", ("self", "tp", "offset_from", "offset_to"), "fix 10"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "ack", ("self", "message"), "fix 10 (_delivery.direct_handler)"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "callback", None, "fix 10"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "consumer_stopped_errors", None, "fix 10"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "diag", None, "fix 10"),
    Member("faust.tables.recovery:Recovery", "active_highwaters", None, "fix 9"),
    Member("faust.tables.recovery:Recovery", "standby_offsets", None, "fix 9"),
    Member("aiokafka:AIOKafkaConsumer", "beginning_offsets", ("self", "partitions"), "fix 9"),
    Member(f"{_FAUST_CONSUMER}:TransactionManager", "_tps_to_transactional_ids", ("self", "tps"), "fixes 2, 3"),
    Member(f"{_FAUST_CONSUMER}:TransactionManager", "_stop_transactions", ("self", "tids"), "fix 2"),
    Member(
        f"{_FAUST_CONSUMER}:TransactionManager",
        "transactional_id_format",
        None,
        "agents.Runtime._tid names transactions the same way",
        "{group_id}-{tpg.group}-{tpg.partition}",
    ),
    Member(f"{_FAUST_AIOKAFKA}:Producer", "_transaction_producers", None, "fixes 2, 3, 7; agents.Runtime.flush"),
    Member(f"{_FAUST_AIOKAFKA}:Producer", "_trn_locks", None, "fixes 3, 7"),
    Member("aiokafka:AIOKafkaProducer", "_txn_manager", None, "fix 3"),
    Member("aiokafka.producer.transaction_manager:TransactionManager", "is_in_transaction", ("self",), "fix 3"),
    Member("aiokafka:AIOKafkaProducer", "commit_transaction", ("self",), "fixes 3, 7"),
    Member("aiokafka:AIOKafkaProducer", "begin_transaction", ("self",), "fixes 3, 7"),
    Member("aiokafka:AIOKafkaProducer", "send_offsets_to_transaction", ("self", "offsets", "group_id"), "fix 7"),
    Member(
        "aiokafka:AIOKafkaProducer",
        "send",
        ("self", "topic", "value", "key", "partition", "timestamp_ms", "headers"),
        "agents.Runtime.flush",
    ),
    Member(f"{_FAUST_CONSUMER}:Consumer", "resume_partitions", ("self", "tps"), "fix 4 (shadowed per call)"),
    Member(f"{_FAUST_CONSUMER}:Consumer", "crash", ("self", "reason"), "fix 5"),
    Member("faust.stores.rocksdb:Store", "_db_for_partition", ("self", "partition"), "tables.store_write"),
    Member("faust.stores.rocksdb:Store", "_key_index", None, "tables.store_write"),
    Member(
        "faust.stores.rocksdb:Store",
        "offset_key",
        None,
        "tables.OFFSET_KEY: the persisted offset, written with the states in one batch",
        b"__faust\0offset__",
    ),
    Member(f"{_FAUST_CONSUMER}:Consumer", "in_transaction", None, "fix 5 (at least once: Runtime.committed)"),
    Member("faust.transport.producer:Producer", "app", None, "fix 7 (Runtime.committed)"),
    Member("faust.worker:Worker", "on_setup_root_logger", ("self", "logger", "level"), "worker.run_worker: overridden"),
    Member("faust.worker:Worker", "spinner", None, "worker.run_worker (set to None)"),
)


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _supported_text() -> str:
    return ", ".join(f"{d}=={v}" for d, v in SUPPORTED.items())


def _has_data_attribute(cls: type, name: str) -> bool:
    if hasattr(cls, name):
        return True
    for klass in cls.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            return True
        init = klass.__dict__.get("__init__")
        if init is not None:
            try:
                source = inspect.getsource(init)
            except (OSError, TypeError):
                continue
            if re.search(rf"\bself\.{re.escape(name)}\s*[:=]", source):
                return True
    return False


def check_member(m: Member, resolve: Callable[[str], Any] | None = None) -> str | None:
    """What is wrong with ``m`` in the installed libraries, or None."""
    symbol = f"{m.owner}.{m.attribute}"
    try:
        cls = resolve(m.owner) if resolve is not None else _resolve(m.owner)
    except (ImportError, AttributeError) as e:
        return f"{symbol}: {m.owner} cannot be imported ({e})"
    if m.params is None:
        if not _has_data_attribute(cls, m.attribute):
            return f"{symbol}: no such attribute"
        if m.value is not None and getattr(cls, m.attribute, None) != m.value:
            return f"{symbol}: {getattr(cls, m.attribute, None)!r}, expected {m.value!r}"
        return None
    fn = inspect.getattr_static(cls, m.attribute, None)
    if fn is None:
        return f"{symbol}: no such method"
    try:
        params = tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError) as e:
        return f"{symbol}: no signature ({e})"
    if params != m.params:
        return f"{symbol}: parameters {params}, expected {m.params}"
    return None


def _resolve(owner: str) -> Any:
    module, _, name = owner.partition(":")
    return getattr(import_module(module), name)


def check_runtime(members: tuple[Member, ...] | None = None, resolve: Callable[[str], Any] | None = None) -> None:
    """Raise :class:`FaustRuntimeError` unless the installed faust/aiokafka are the supported ones
    and every member exists as expected (see the module doc)."""
    wrong = [f"{d} {_installed(d) or 'not installed'}" for d, v in SUPPORTED.items() if _installed(d) != v]
    if wrong:
        raise FaustRuntimeError(
            f"unsupported faust runtime: installed {', '.join(wrong)}; the processors' faust fixes "
            f"support exactly {_supported_text()} (pip install 'tripwire[pipeline]')"
        )
    problems = [p for p in (check_member(m, resolve) for m in (MEMBERS if members is None else members)) if p]
    if problems:
        raise FaustRuntimeError(
            f"the faust runtime differs from the one the processors were written for: {'; '.join(problems)} "
            f"(supported: {_supported_text()})"
        )
