"""docs/configuration.md is generated from the settings classes and must match them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tests.deploy_reference import load_reference

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_committed_reference_is_up_to_date() -> None:
    ref = load_reference()
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == ref.render(), "docs/configuration.md is stale: run python scripts/config_reference.py"


def test_every_setting_has_a_meaning() -> None:
    assert load_reference().undocumented() == []


def test_discovery_finds_every_component_class() -> None:
    ref = load_reference()
    found = {c.cls.__name__: c.prefix for c in ref.settings_classes()}
    expected = {
        "TracerConfig": "TRIPWIRE_",
        "KafkaProducerSettings": "TRIPWIRE_KAFKA_",
        "DeliverySettings": "TRIPWIRE_DELIVERY_",
        "KillSwitchConfig": "TRIPWIRE_KILLSWITCH_",
        "SchemaConfig": "TRIPWIRE_SCHEMA_",
        "ProcessorConfig": "TRIPWIRE_PROCESSORS_",
        "ClickHouseSettings": "TRIPWIRE_CLICKHOUSE_",
        "SinkSettings": "TRIPWIRE_SINK_",
        "DashboardSettings": "TRIPWIRE_DASHBOARD_",
        "KafkaDevConfig": "TRIPWIRE_DEV_KAFKA_",
    }
    assert {k: found.get(k) for k in expected} == expected
    # every class has as many documented settings as it has fields
    for c in ref.settings_classes():
        assert [s.name for s in c.settings] == list(c.cls.model_fields)


def test_env_names_are_the_ones_pydantic_settings_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    ref = load_reference()
    names = ref.env_names()
    from tripwire.processors.config import ProcessorConfig
    from tripwire.sinks.config import SinkSettings

    assert {"TRIPWIRE_PROCESSORS_PARTITIONS", "TRIPWIRE_KAFKA_BOOTSTRAP", "TRIPWIRE_KAFKA_SASL_PASSWORD",
            "TRIPWIRE_CLICKHOUSE_URL", "TRIPWIRE_KILLSWITCH_PRIVATE_KEY_PATH"} <= names
    monkeypatch.setenv("TRIPWIRE_PROCESSORS_PARTITIONS", "12")
    monkeypatch.setenv("TRIPWIRE_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("TRIPWIRE_SINK_GROUP_ID", "g-sink")
    assert ProcessorConfig().partitions == 12
    assert ProcessorConfig().bootstrap == "kafka:9092" == SinkSettings().bootstrap  # the shared fallback
    assert SinkSettings().group_id == "g-sink"
    assert ref.is_setting("tripwire_processors_partitions", names)
    assert not ref.is_setting("TRIPWIRE_PROCESSORS_PARTITION", names)
    assert not ref.is_setting("TRIPWIRE_KAFKA_BOOTSTRAPS", names)


def test_nested_delimiter_families_and_secrets() -> None:
    ref = load_reference()

    class Demo(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="TRIPWIRE_DEMO_", env_nested_delimiter="__")
        plain: int = Field(3, ge=1, description="a number")
        secrets: dict[str, SecretStr] = Field(default_factory=dict, description="named secrets")
        blank: str = "x"
    c = ref._describe_class(Demo, __name__, {}, {})
    by_name = {s.name: s for s in c.settings}
    assert by_name["plain"].env == ("TRIPWIRE_DEMO_PLAIN",)
    assert by_name["plain"].type == "integer (≥1)" and by_name["plain"].default == "`3`"
    assert by_name["secrets"].env == ("TRIPWIRE_DEMO_SECRETS", "TRIPWIRE_DEMO_SECRETS__<KEY>")
    assert by_name["secrets"].secret is True
    assert ref.undocumented([c]) == ["Demo.blank"]
    assert ref.is_setting("TRIPWIRE_DEMO_SECRETS__OPS_HOOK", {"TRIPWIRE_DEMO_SECRETS__<KEY>"})
    assert not ref.is_setting("TRIPWIRE_DEMO_SECRETS__", {"TRIPWIRE_DEMO_SECRETS__<KEY>"})
    rendered = ref.render([c])
    assert "| `TRIPWIRE_DEMO_BLANK` | string | `x` | **undocumented**" in rendered
