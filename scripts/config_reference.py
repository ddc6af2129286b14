"""Generate ``docs/configuration.md`` from the pydantic-settings classes of the codebase.

Usage::

    python scripts/config_reference.py            # rewrite docs/configuration.md
    python scripts/config_reference.py --check    # exit 1 when the committed file is out of date

The classes are found, not listed: every module of the mapped packages (``pyproject.toml``'s
``package-dir``) that defines a subclass of ``BaseSettings`` is imported and each such class is
documented field by field: its environment variable(s), type and bounds, default, and meaning
(the field's ``description``, else its attribute docstring, else its trailing ``#`` comment, else
an entry of :data:`MEANINGS` below). A field with no meaning at all is an error, so a new
undocumented setting fails ``tests/unit/test_deploy_config_reference.py``.

:func:`env_names` is also what ``tests/unit/test_deploy_compose.py`` checks the compose file's
variables against.
"""

from __future__ import annotations

import ast
import functools
import importlib
import io
import re
import sys
import tokenize
import tomllib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"

# Meanings of fields that carry no description, docstring or comment in their class. Keyed by
# (class name, field name). Prefer documenting the field in its class; this is the fallback.
MEANINGS: dict[tuple[str, str], str] = {
    ("KafkaProducerSettings", "bootstrap"): "Kafka bootstrap servers (`host:port[,host:port]`) the SDK produces to.",
    ("KafkaProducerSettings", "topic"): "Topic the SDK writes events to (key = run_id).",
    ("KafkaProducerSettings", "compression"): "Producer compression codec (librdkafka `compression.type`).",
    ("KafkaProducerSettings", "linger_ms"): "How long the producer waits to fill a batch (librdkafka `linger.ms`).",
    ("KafkaProducerSettings", "batch_size"): "Maximum bytes of one produce batch (librdkafka `batch.size`).",
    ("KafkaProducerSettings", "security_protocol"): "librdkafka `security.protocol`: TLS (`SSL`), SASL, or both.",
    ("KafkaProducerSettings", "sasl_mechanism"): "librdkafka `sasl.mechanism`, e.g. `SCRAM-SHA-512` or `PLAIN`.",
    ("KafkaProducerSettings", "sasl_username"): "SASL user name (librdkafka `sasl.username`).",
    ("KafkaProducerSettings", "sasl_password"): "SASL password (librdkafka `sasl.password`); a secret, never logged.",
    ("KafkaProducerSettings", "client_id"): "Kafka `client.id` of the SDK's producer (broker logs and quotas).",
    ("DeliverySettings", "transport"): "`kafka` produces to the broker; `queue` hands records to an in-process "
    "queue (the embedded runtime).",
    ("DeliverySettings", "spool_enabled"): "Write records to the on-disk spool when the broker is unreachable "
    "(off: they are counted as dropped).",
    ("DeliverySettings", "spool_dir"): "Folder of the on-disk spool (one per agent process).",
    ("DeliverySettings", "spool_max_bytes"): "Size cap of the spool; beyond it new records are dropped and counted.",
    ("DeliverySettings", "segment_bytes"): "Size of one spool segment file (must not exceed `spool_max_bytes`).",
    ("DeliverySettings", "poll_interval_s"): "How often the delivery worker polls the producer for callbacks.",
    ("DeliverySettings", "flush_timeout_s"): "Default bound of `Tracer.flush()`.",
    ("DeliverySettings", "close_timeout_s"): "Default bound of `Tracer.close()` (then unsent records go to the spool).",
    ("TracerConfig", "enabled"): "Off: the SDK becomes a no-op tracer (nothing is emitted).",
    ("TracerConfig", "tenant"): "Tenant stamped on every event.",
    ("TracerConfig", "environment"): "Deployment environment stamped on every event (dev, staging, prod).",
    ("TracerConfig", "agent_version"): "Agent version stamped on every event (compared by the release gate).",
    ("TracerConfig", "credential_fingerprint"): "Fingerprint (hash) of the credential the agent acts with; "
    "never the credential itself.",
    ("TracerConfig", "agent"): "The agent YAML's `agent:` block: name and per-run budgets (keys below).",
    ("TracerConfig", "logging"): "The agent YAML's `logging:` block (keys below).",
    ("TracerConfig", "redaction"): "How PII and secrets are removed before anything is serialized (keys below).",
    ("TracerConfig", "kafka"): "The producer settings, one variable each under `TRIPWIRE_KAFKA_` (next section).",
    ("TracerConfig", "delivery"): "The delivery settings, one variable each under `TRIPWIRE_DELIVERY_` "
    "(section after next).",
    ("AgentSpec", "name"): "Agent name (the `agent_id` on every event).",
    ("AgentSpec", "max_steps"): "Per-run cap on steps (model + tool calls); unset = no cap.",
    ("AgentSpec", "max_tool_calls"): "Per-run cap on tool calls; unset = no cap.",
    ("AgentSpec", "max_prompt_tokens"): "Per-run cap on prompt (input) tokens; unset = no cap.",
    ("AgentSpec", "max_completion_tokens"): "Per-run cap on completion (output) tokens; unset = no cap.",
    ("AgentSpec", "max_cost_usd"): "Per-run cost cap in USD; unset = no cap.",
    ("AgentSpec", "models"): "`default` and `escalate` model names, recorded with the config.",
    ("AgentSpec", "escalation_rules"): "`- if: <condition>` / `action: <action>` rules, recorded with the config "
    "and evaluated by the processors.",
    ("LoggingSpec", "trace_id"): "Carry the W3C trace id on every event.",
    ("LoggingSpec", "log_tool_args"): "`redact_pii`: tool arguments are logged after redaction; `none`: only "
    "their hash.",
    ("LoggingSpec", "store_prompts"): "Keep prompts and completions: a bool, or a retention such as `30_days`.",
    ("LoggingSpec", "prompt_retention_days"): "Retention of stored prompts (set through `store_prompts`).",
    ("RedactionSpec", "mode"): "`redact` replaces matches with a typed marker, `hash` with a keyed hash, `drop` "
    "removes the value.",
    ("RedactionSpec", "detectors"): "Which PII and secret detectors run on every string before serialization.",
    ("KillSwitchConfig", "enabled"): "Off: the SDK guard allows every call without consulting the kill switch.",
    ("KillSwitchConfig", "bootstrap"): "Kafka bootstrap servers of the kill-switch topic.",
    ("KillSwitchConfig", "topic"): "The compacted kill-switch topic (key = scope).",
    ("KillSwitchConfig", "max_clock_skew_s"): "Commands issued further in the future than this are rejected.",
    ("KillSwitchConfig", "security_protocol"): "librdkafka `security.protocol` of the listener, CLI and policy "
    "publisher.",
    ("KillSwitchConfig", "sasl_mechanism"): "librdkafka `sasl.mechanism`, e.g. `SCRAM-SHA-512`.",
    ("KillSwitchConfig", "sasl_username"): "SASL user name.",
    ("KillSwitchConfig", "sasl_password"): "SASL password; a secret, never logged.",
    ("SchemaConfig", "framing"): "`single_object` (Avro single-object encoding, no service needed) or "
    "`confluent` (Schema Registry wire format).",
    ("SchemaConfig", "registry_url"): "Schema Registry URL (`http(s)://...`); required with `confluent` framing.",
    ("SchemaConfig", "auto_register"): "Register the shipped schemas under their subjects on first use.",
    ("SchemaConfig", "registry_timeout_s"): "HTTP timeout of one registry request.",
    ("SchemaConfig", "registry_max_retries"): "Retries of a failed registry request (then the error is raised "
    "as retryable; data never goes to the DLQ for it).",
    ("ProcessorConfig", "bootstrap"): "Kafka bootstrap servers of the faust worker.",
    ("ProcessorConfig", "replication"): "Replication factor of the topics the worker creates (3 on a cluster).",
    ("ProcessorConfig", "data_dir"): "Folder of the worker's local RocksDB tables (rebuilt from changelogs).",
    ("ProcessorConfig", "policy_path"): "Detector policy YAML overriding the shipped `default_policy.yaml`.",
    ("ProcessorConfig", "log_level"): "faust worker log level.",
    ("ProcessorConfig", "processing_guarantee"): "`exactly_once`: outputs, state and offsets commit in one Kafka "
    "transaction per source partition; `at_least_once`: replays after a crash may repeat outputs.",
    ("ClickHouseSettings", "url"): "Where the data lives: `chdb:///dir?database=db` (embedded) or "
    "`clickhouse(s)://user:password@host:port/db` (server; `clickhouses` = TLS, port 8443 by default).",
    ("ClickHouseSettings", "prompt_ttl_days"): "TTL of prompts, completions and tool arguments (column TTL).",
    ("ClickHouseSettings", "call_ttl_days"): "TTL of model and tool call rows.",
    ("ClickHouseSettings", "query_max_rows"): "Row limit of `tripwire sql` and analyst queries.",
    ("ClickHouseSettings", "query_timeout_s"): "Time limit of `tripwire sql` and analyst queries.",
    ("SinkSettings", "bootstrap"): "Kafka bootstrap servers the sink consumes from.",
    ("SinkSettings", "group_id"): "Consumer group of the sink (scale out: more sink processes, same group).",
    ("SinkSettings", "topic_prefix"): "Prefix of the topic names (as `topic_names(prefix)`).",
    ("SinkSettings", "batch_rows"): "Flush a table's batch at this many rows.",
    ("SinkSettings", "batch_bytes"): "Flush a table's batch at this many bytes.",
    ("SinkSettings", "batch_seconds"): "Flush at least this often.",
    ("SinkSettings", "retry_initial_s"): "First backoff after a failed insert (partitions are paused meanwhile).",
    ("SinkSettings", "retry_max_s"): "Backoff cap of failed inserts.",
    ("SinkSettings", "poll_timeout_s"): "Consumer poll timeout.",
    ("DashboardSettings", "store_url"): "Store the dashboard reads (falls back to `TRIPWIRE_CLICKHOUSE_URL`); "
    "use a read-only user plus insert rights on `alert_acks` and `killswitch_audit`.",
    ("DashboardSettings", "auth"): "`oidc`: Streamlit sign-in with the `[auth]` secrets, roles from `roles_path`; "
    "`dev`: no sign-in, loopback only, every action as `operator`; unset: `oidc` when `[auth]` secrets exist.",
    ("DashboardSettings", "roles_path"): "Roles YAML mapping signed-in emails and groups to viewer, oncall, "
    "analyst, admin (required with `oidc`).",
    ("DashboardSettings", "secrets_path"): "Secrets TOML with the `[auth]` section (OIDC client); default: "
    "Streamlit's `.streamlit/secrets.toml` lookup.",
    ("DashboardSettings", "operator"): "Who the dashboard records as acting (until sign-in exists).",
    ("DashboardSettings", "refresh_s"): "Auto-refresh interval of the live pages.",
    ("DashboardSettings", "sql_max_rows"): "Row limit of the SQL page.",
    ("DashboardSettings", "sql_timeout_s"): "Time limit of the SQL page.",
    ("DashboardSettings", "publish_timeout_s"): "How long a trip/reset waits for the broker's acknowledgement.",
    ("NotifyConfig", "bootstrap"): "Kafka bootstrap servers of the notifier.",
    ("NotifyConfig", "routes_path"): "Routes YAML: which alerts and kill-switch events go to which receiver.",
    ("NotifyConfig", "secrets"): "Receiver secrets (webhook URLs, HMAC keys, routing keys) the routes name; "
    "one variable per secret.",
    ("NotifyConfig", "backoff_initial_s"): "First retry delay of a failed delivery (exponential, with jitter).",
    ("NotifyConfig", "backoff_max_s"): "Retry delay cap of failed deliveries.",
    ("NotifyConfig", "request_timeout_s"): "HTTP timeout of one delivery.",
    ("NotifyConfig", "poll_timeout_s"): "Consumer poll timeout.",
    ("NotifyConfig", "commit_interval_s"): "How often delivered offsets are committed.",
    ("NotifyConfig", "session_timeout_s"): "Consumer-group session timeout (how soon a dead notifier's "
    "partitions move).",
    ("KafkaDevConfig", "version"): "Apache Kafka version of the dev broker.",
    ("KafkaDevConfig", "port"): "Client port of the dev broker (127.0.0.1).",
    ("KafkaDevConfig", "controller_port"): "KRaft controller port of the dev broker.",
    ("KafkaDevConfig", "heap"): "JVM heap of the dev broker.",
    ("KafkaDevConfig", "run_dir"): "Config, data, logs and pid of the dev broker.",
    ("KafkaDevConfig", "cache_dir"): "Where the broker jars are cached (reused between runs).",
    ("KafkaDevConfig", "start_timeout_s"): "How long `start` waits for the broker to answer.",
}

# Sections in the order of the data flow; a class whose prefix is not listed sorts after these.
ORDER = ("TRIPWIRE_", "TRIPWIRE_KAFKA_", "TRIPWIRE_DELIVERY_", "TRIPWIRE_KILLSWITCH_", "TRIPWIRE_SCHEMA_",
         "TRIPWIRE_PROCESSORS_", "TRIPWIRE_NOTIFY_", "TRIPWIRE_CLICKHOUSE_", "TRIPWIRE_SINK_", "TRIPWIRE_DASHBOARD_",
         "TRIPWIRE_DEV_KAFKA_")


@dataclass(frozen=True)
class Setting:
    name: str  # field name
    env: tuple[str, ...]  # environment variables that set it, first = the canonical one
    type: str
    default: str
    meaning: str
    secret: bool
    nested: tuple[tuple[str, str, str, str], ...] = ()  # (yaml key, type, default, meaning) of a sub-model


@dataclass(frozen=True)
class SettingsClass:
    cls: type
    module: str
    prefix: str
    doc: str
    settings: tuple[Setting, ...]


# -- discovery -------------------------------------------------------------------------------------


def _package_dirs() -> dict[str, Path]:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {pkg: ROOT / folder for pkg, folder in mapping.items()}


def _module_files() -> dict[str, Path]:
    """Dotted module name -> file, over every mapped package (sub-packages included)."""
    out: dict[str, Path] = {}
    dirs = _package_dirs()
    claimed = {d.resolve() for pkg, d in dirs.items() if pkg != "tripwire"}
    for pkg, folder in dirs.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder)
            if any(p.startswith(".") for p in rel.parts) or "__pycache__" in rel.parts:
                continue
            if pkg == "tripwire" and any(parent.resolve() in claimed for parent in path.parents):
                continue
            parts = [*pkg.split("."), *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _settings_modules(files: dict[str, Path]) -> list[str]:
    """Modules defining a class derived (directly or through another such class) from BaseSettings."""
    trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in files.items()}
    bases_of: dict[str, list[tuple[str, set[str]]]] = {}
    for mod, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names = {b.id if isinstance(b, ast.Name) else b.attr for b in node.bases
                         if isinstance(b, ast.Name | ast.Attribute)}
                bases_of.setdefault(mod, []).append((node.name, names))
    known = {"BaseSettings"}
    while True:
        found = {name for classes in bases_of.values() for name, bases in classes if bases & known}
        if found <= known:
            break
        known |= found
    return sorted(m for m, classes in bases_of.items() if any(bases & known for _, bases in classes))


def settings_classes() -> list[SettingsClass]:
    """Every pydantic-settings class defined in the codebase, in data-flow order."""
    return list(_settings_classes())


@functools.cache
def _settings_classes() -> tuple[SettingsClass, ...]:
    from pydantic_settings import BaseSettings

    files = _module_files()
    found: list[SettingsClass] = []
    for mod_name in _settings_modules(files):
        module = importlib.import_module(mod_name)
        comments, docstrings = _source_notes(files[mod_name])
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings
                    and obj.__module__ == mod_name):
                found.append(_describe_class(obj, mod_name, comments, docstrings))
    found.sort(key=lambda c: (ORDER.index(c.prefix) if c.prefix in ORDER else len(ORDER), c.prefix, c.cls.__name__))
    return tuple(found)


def env_names() -> set[str]:
    """Every environment variable any settings class reads (upper case). A name ending in ``<KEY>``
    stands for a family (``TRIPWIRE_NOTIFY_SECRETS__<KEY>``): see :func:`is_setting`."""
    return {e for c in settings_classes() for s in c.settings for e in s.env}


def is_setting(name: str, names: set[str] | None = None) -> bool:
    """True when the environment variable ``name`` is read by a settings class."""
    names = env_names() if names is None else names
    upper = name.upper()
    return upper in names or any(n.endswith("<KEY>") and upper.startswith(n[: -len("<KEY>")]) and
                                 len(upper) > len(n) - len("<KEY>") for n in names)


def undocumented(classes: list[SettingsClass] | None = None) -> list[str]:
    """``Class.field`` of every setting without a meaning (the unit test requires none)."""
    classes = classes if classes is not None else settings_classes()
    return [f"{c.cls.__name__}.{s.name}" for c in classes for s in c.settings if not s.meaning]


# -- per-field description --------------------------------------------------------------------------


def _source_notes(path: Path) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """(class, field) -> trailing comment, and (class, field) -> attribute docstring."""
    text = path.read_text(encoding="utf-8")
    line_comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            line_comments[tok.start[0]] = tok.string.lstrip("#").strip()
    comments: dict[tuple[str, str], str] = {}
    docstrings: dict[tuple[str, str], str] = {}
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for i, stmt in enumerate(body):
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            field = stmt.target.id
            end = stmt.end_lineno or stmt.lineno
            for line in range(stmt.lineno, end + 1):
                if line in line_comments:
                    comments[(node.name, field)] = line_comments[line]
            nxt = body[i + 1] if i + 1 < len(body) else None
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docstrings[(node.name, field)] = " ".join(nxt.value.value.split())
    return comments, docstrings


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(f"`{a}`" for a in get_args(tp))
    if origin in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        inner = " or ".join(_type_name(a) for a in args)
        return f"{inner} (optional)" if len(args) < len(get_args(tp)) else inner
    if origin in (dict,):
        k, v = get_args(tp)
        return f"map {_type_name(k)} → {_type_name(v)} (JSON)"
    if origin in (tuple, list, set, frozenset):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"list of {_type_name(args[0]).removesuffix(' (JSON)')} (JSON)" if args else "list (JSON)"
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return " | ".join(f"`{m.value}`" for m in tp)
        names = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "Path": "path",
                 "SecretStr": "secret string"}
        if tp.__name__ in names:
            return names[tp.__name__]
        try:
            from pydantic import BaseModel

            if issubclass(tp, BaseModel):
                return "object (JSON)"
        except TypeError:
            pass
        return tp.__name__
    return str(tp).replace("typing.", "")


def _bounds(field: Any) -> str:
    marks = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "min length ", "max_length": "max length "}
    out = []
    for m in field.metadata:
        for attr, sym in marks.items():
            value = getattr(m, attr, None)
            if value is not None:
                out.append(f"{sym}{value}")
    return ", ".join(out)


def _show(value: Any) -> str:
    from pydantic import BaseModel, SecretStr

    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, BaseModel):
        from pydantic_settings import BaseSettings

        if isinstance(value, BaseSettings):
            return f"from `{value.model_config.get('env_prefix', '')}*`"
        return "(see keys)"
    if isinstance(value, Path):
        home = str(Path.home())
        text = str(value)
        value = "~" + text[len(home):] if text.startswith(home + "/") else text
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple | list):
        return "`" + ", ".join(str(v) for v in value) + "`" if value else "empty"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    if value == "":
        return "empty"
    return f"`{value}`"


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        return _show(field.default_factory())
    if field.default is PydanticUndefined:
        return "required"
    return _show(field.default)


def _envs(cls: type, name: str, field: Any, prefix: str) -> tuple[str, ...]:
    from pydantic import AliasChoices

    alias = field.validation_alias
    if alias is None:
        return ((prefix + name).upper(),)
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    # pydantic-settings reads every string alias as a variable name (no prefix); the tripwire ones
    # are the documented interface (the bare field-name alias exists for keyword construction).
    names = [c.upper() for c in choices if isinstance(c, str) and c.upper().startswith("TRIPWIRE_")]
    canonical = (prefix + name).upper()
    names.sort(key=lambda n: (n != canonical, choices.index(next(c for c in choices if c.upper() == n))))
    return tuple(names)


def _is_secret(tp: Any) -> bool:
    from pydantic import SecretStr

    return tp is SecretStr or SecretStr in get_args(tp)


def _secret_values(tp: Any) -> bool:
    from pydantic import SecretStr

    return get_origin(tp) is dict and get_args(tp)[-1] is SecretStr


def _nested(cls: type, tp: Any) -> tuple[tuple[str, str, str, str], ...]:
    """Keys of a plain BaseModel field (the agent YAML blocks), one level deep."""
    from pydantic import BaseModel
    from pydantic_settings import BaseSettings

    if not (isinstance(tp, type) and issubclass(tp, BaseModel)) or issubclass(tp, BaseSettings):
        return ()
    comments, docstrings = _source_notes(Path(sys.modules[tp.__module__].__file__ or ""))
    rows = []
    for key, f in tp.model_fields.items():
        meaning = f.description or docstrings.get((tp.__name__, key)) or comments.get((tp.__name__, key)) or \
            MEANINGS.get((tp.__name__, key), "")
        label = f.alias or key
        rows.append((label, _type_name(f.annotation), _default(f), meaning))
    return tuple(rows)


def _shared_security(cls: Any, name: str, field: Any) -> bool:
    """A TLS/SASL field a component inherits unchanged from ``KafkaSecurity`` (documented once, there)."""
    from tripwire.core.kafka_security import KafkaSecurity

    return cls is not KafkaSecurity and issubclass(cls, KafkaSecurity) and \
        KafkaSecurity.model_fields.get(name) is field


def _describe_class(cls: Any, module: str, comments: dict, docstrings: dict) -> SettingsClass:
    prefix = cls.model_config.get("env_prefix", "") or ""
    settings = []
    for name, field in cls.model_fields.items():
        if _shared_security(cls, name, field):
            continue
        meaning = (field.description or docstrings.get((cls.__name__, name)) or comments.get((cls.__name__, name))
                   or MEANINGS.get((cls.__name__, name), ""))
        bounds = _bounds(field)
        tp = _type_name(field.annotation) + (f" ({bounds})" if bounds else "")
        envs = _envs(cls, name, field, prefix)
        delimiter = cls.model_config.get("env_nested_delimiter")
        if delimiter and get_origin(field.annotation) is dict:
            envs = (*envs, f"{envs[0]}{delimiter}<KEY>")
        settings.append(Setting(name, envs, tp, _default(field), meaning,
                                _is_secret(field.annotation) or _secret_values(field.annotation),
                                _nested(cls, field.annotation)))
    doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    if any(_shared_security(cls, n, f) for n, f in cls.model_fields.items()):
        doc += " Kafka TLS/SASL: the shared [`TRIPWIRE_KAFKA_*` security settings](#tripwire_kafka_--kafkasecurity)."
    doc = re.sub(r":\w+:`~?(?:[\w.]*\.)?(\w+)`", r"`\1`", doc).replace("``", "`")
    return SettingsClass(cls, module, prefix, doc, tuple(settings))


# -- rendering --------------------------------------------------------------------------------------

HEADER = """\
# Configuration reference

<!-- Generated by `python scripts/config_reference.py` from the pydantic-settings classes; do not edit.
     tests/unit/test_deploy_config_reference.py fails when this file is out of date. -->

Every tripwire component reads its settings from one frozen pydantic-settings class with its own
environment prefix. Names are case-insensitive; command-line options, where a command has them,
win over the environment, which wins over the defaults. Values that do not parse, or break a
cross-field rule, stop the component at start with an error that names the variable. Secrets
(`secret string`) are never printed or logged. Structured values (objects, lists, maps) are
given as JSON in the environment, or as YAML in the agent's config file (`load_config`).

| prefix | class | read by |
|---|---|---|
{index}

## Security settings at a glance

- **Kafka TLS and SASL (SCRAM, PLAIN)** are one shared block, [`KafkaSecurity`](#tripwire_kafka_--kafkasecurity),
  read by every Kafka client: {kafka_secure}. `TRIPWIRE_KAFKA_SECURITY_PROTOCOL` (`SSL`,
  `SASL_PLAINTEXT`, `SASL_SSL`), `TRIPWIRE_KAFKA_SASL_MECHANISM` (`SCRAM-SHA-512`, `SCRAM-SHA-256`,
  `PLAIN`), `TRIPWIRE_KAFKA_SASL_USERNAME`, `TRIPWIRE_KAFKA_SASL_PASSWORD` (secret),
  `TRIPWIRE_KAFKA_SSL_CAFILE`, `TRIPWIRE_KAFKA_SSL_CERTFILE`/`TRIPWIRE_KAFKA_SSL_KEYFILE` (mutual TLS),
  `TRIPWIRE_KAFKA_SSL_KEY_PASSWORD` (secret), `TRIPWIRE_KAFKA_SSL_CHECK_HOSTNAME`. They are passed to
  confluent-kafka (librdkafka: `security.protocol`, `sasl.*`, `ssl.*`) and, by the processors, to
  aiokafka through faust's `broker_credentials`. A `SASL_*` protocol without mechanism, user or
  password, or an SSL file that does not exist, stops the component at start. The kill switch's
  older `TRIPWIRE_KILLSWITCH_SECURITY_PROTOCOL` and `TRIPWIRE_KILLSWITCH_SASL_*` still work and win
  over the shared ones.
{kafka_plain}- **ClickHouse TLS and credentials** are in the store URL, which is a secret:
  `clickhouses://user:password@host:8443/db` connects over TLS (`clickhouse://` is plain HTTP,
  port 8123). Give each component its own user (see `deploy/clickhouse/users.d/tripwire.xml`): the
  sink and migrations a writer, the dashboard a reader that may only insert acknowledgements and
  kill-switch audit rows, analysts a read-only user.
- **Kill-switch signing keys** are files: `TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH` (control plane,
  on-call CLI, dashboard, policy worker: never on an agent host) and
  `TRIPWIRE_KILLSWITCH_PUBLIC_KEY_PATH` or `TRIPWIRE_KILLSWITCH_PUBLIC_KEY` (what agents trust).
  `tripwire keys generate` writes a pair (private key mode 0600).
- **Policy files**: `TRIPWIRE_PROCESSORS_POLICY_PATH` (detector thresholds, YAML) and
  `TRIPWIRE_KILLSWITCH_POLICY_PATH` (which alerts trip which switch, YAML); unset = the shipped
  defaults.
"""


def _cell(text: str) -> str:
    text = re.sub(r":\w+:`~?([\w.]+)`", r"`\1`", text).replace("``", "`")
    parts = text.split("`")  # outside code spans, < and > would be read as HTML
    text = "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))
    return text.replace("|", "\\|").replace("\n", " ")


def render(classes: list[SettingsClass] | None = None) -> str:
    classes = classes if classes is not None else settings_classes()
    index = "\n".join(f"| [`{c.prefix}`](#{_anchor(c)}) | `{c.cls.__name__}` | `{c.module}` |" for c in classes)
    from tripwire.core.kafka_security import KafkaSecurity

    secure = [c for c in classes if issubclass(c.cls, KafkaSecurity) and c.cls is not KafkaSecurity]
    plain = [c for c in classes if any(s.name == "bootstrap" for s in c.settings) and c not in secure
             and c.prefix != "TRIPWIRE_DEV_KAFKA_"]
    kafka_secure = ", ".join(f"`{c.prefix}` ({c.cls.__name__})" for c in secure) or "no class"
    kafka_plain = (
        "  The other Kafka clients, " + ", ".join(f"`{c.prefix}` ({c.cls.__name__})" for c in plain)
        + ", have no security settings yet: they connect in PLAINTEXT, so run them on a private network "
        "or derive their class from `KafkaSecurity`.\n"
    ) if plain else ""
    out = [HEADER.format(index=index, kafka_secure=kafka_secure, kafka_plain=kafka_plain)]
    for c in classes:
        out.append(f"\n## `{c.prefix}*` — {c.cls.__name__}\n")
        out.append(f"`{c.module}.{c.cls.__name__}`. {c.doc}\n")
        out.append("| variable | type | default | meaning |")
        out.append("|---|---|---|---|")
        for s in c.settings:
            env = "<br>".join(f"`{e}`" for e in s.env)
            secret = " **Secret.**" if s.secret else ""
            meaning = _cell(s.meaning) or "**undocumented**: add a docstring to the field"
            out.append(f"| {env} | {_cell(s.type)} | {_cell(s.default)} | {meaning}{secret} |")
        for s in c.settings:
            if s.nested:
                out.append(f"\n`{s.env[0]}` (YAML key `{s.name}:`) keys:\n")
                out.append("| key | type | default | meaning |")
                out.append("|---|---|---|---|")
                for key, tp, default, meaning in s.nested:
                    out.append(f"| `{s.name}.{key}` | {_cell(tp)} | {_cell(default)} | {_cell(meaning) or '—'} |")
    return "\n".join(out).rstrip() + "\n"


def _anchor(c: SettingsClass) -> str:
    title = f"{c.prefix}* — {c.cls.__name__}".lower()
    return "".join(ch for ch in title.replace(" ", "-") if ch.isalnum() or ch in "-_")


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC.relative_to(ROOT)} is out of date: run python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)} ({sum(len(c.settings) for c in settings_classes())} settings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
