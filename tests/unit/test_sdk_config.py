"""Config: the seed YAML as-is, env prefix TRIPWIRE_, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tripwire.core.errors import ConfigError
from tripwire.producers import Tracer
from tripwire.producers.config import TracerConfig, build_config, load_config

pytestmark = pytest.mark.unit

SEED = """\
agent:
  name: "refund-assistant"
  max_steps: 8
  max_tool_calls: 5
  max_prompt_tokens: 12000
  max_completion_tokens: 1500
  max_cost_usd: 0.75
  models:
    default: "gpt-4.1-mini"
    escalate: "gpt-4.1"
  escalation_rules:
    - if: "tool_error_rate > 0.10"
      action: "handoff_to_human"
  logging:
    trace_id: true
    log_tool_args: "redact_pii"
    store_prompts: "30_days"
"""


def test_seed_yaml_as_is(tmp_path: Path) -> None:
    p = tmp_path / "agent.yaml"
    p.write_text(SEED)
    cfg = load_config(p)
    a = cfg.agent
    assert (a.name, a.max_steps, a.max_tool_calls, a.max_prompt_tokens, a.max_completion_tokens, a.max_cost_usd) == (
        "refund-assistant",
        8,
        5,
        12000,
        1500,
        0.75,
    )
    assert (a.models.default, a.models.escalate) == ("gpt-4.1-mini", "gpt-4.1")
    assert [(r.condition, r.action) for r in a.escalation_rules] == [("tool_error_rate > 0.10", "handoff_to_human")]
    lg = cfg.logging
    assert (lg.trace_id, lg.log_tool_args, lg.store_prompts, lg.prompt_retention_days) == (True, "redact_pii", True, 30)


def test_siblings_layout_and_sdk_sections(tmp_path: Path) -> None:
    cfg = build_config(
        {
            "agent": {"name": "a", "max_steps": 3},
            "models": {"default": "m"},
            "logging": {"store_prompts": False},
            "tenant": "acme",
            "kafka": {"bootstrap": "broker:9093", "topic": "x.events"},
            "delivery": {"spool_dir": str(tmp_path), "queue_max": 10},
        }
    )
    assert (cfg.agent.models.default, cfg.logging.store_prompts, cfg.tenant) == ("m", False, "acme")
    assert (cfg.kafka.bootstrap, cfg.kafka.topic, cfg.delivery.queue_max) == ("broker:9093", "x.events", 10)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"agent": {"max_steps": -1}}, "agent.max_steps"),
        ({"agent": {"max_cost_usd": "lots"}}, "agent.max_cost_usd"),
        ({"agent": {"name": "a", "colour": "red"}}, "agent.colour"),
        ({"logging": {"store_prompts": "forever-ish"}}, "store_prompts"),
        ({"logging": {"log_tool_args": "everything"}}, "logging.log_tool_args"),
        ({"kafka": {"extra": {"acks": "0"}}}, "kafka.extra"),
        ({"delivery": {"segment_bytes": 10**9, "spool_max_bytes": 10**6}}, "segment_bytes"),
        ({"redaction": {"mode": "scramble"}}, "redaction.mode"),
        ({"price_overrides": "/nonexistent/prices.yaml"}, "price_overrides"),
    ],
)
def test_invalid_config_names_the_field(data: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build_config(data)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("agent: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRIPWIRE_TENANT", "from-env")
    monkeypatch.setenv("TRIPWIRE_ENABLED", "false")
    monkeypatch.setenv("TRIPWIRE_KAFKA_BOOTSTRAP", "env-broker:9092")
    monkeypatch.setenv("TRIPWIRE_DELIVERY_SPOOL_DIR", str(tmp_path / "s"))
    cfg = TracerConfig()
    assert (cfg.tenant, cfg.enabled, cfg.kafka.bootstrap, cfg.delivery.spool_dir) == (
        "from-env",
        False,
        "env-broker:9092",
        tmp_path / "s",
    )
    p = tmp_path / "agent.yaml"
    p.write_text(SEED + "tenant: from-file\n")
    cfg = load_config(p)
    assert cfg.tenant == "from-file"  # the file wins; the environment fills the rest
    assert cfg.kafka.bootstrap == "env-broker:9092"
    assert not Tracer(cfg).enabled


def test_config_is_frozen() -> None:
    cfg = TracerConfig()
    with pytest.raises(Exception, match="frozen"):
        cfg.tenant = "x"  # type: ignore[misc]


def test_kafka_rejecting_its_config_is_a_config_error(tmp_path: Path) -> None:
    cfg = TracerConfig(kafka={"extra": {"no.such.property": "1"}}, delivery={"spool_dir": tmp_path})
    with pytest.raises(ConfigError, match="rejected its configuration"):
        Tracer(cfg)
