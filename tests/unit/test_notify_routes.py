"""Routes YAML: parsing, secrets, errors that name the route and field, matching, rate-limit buckets, config."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from tests.notify_helpers import make_alert, make_command
from tripwire.core.errors import ConfigError
from tripwire.notify import (
    NotifyConfig,
    RateLimit,
    RoutesError,
    from_alert,
    from_command,
    load_routes,
    routes_from_dict,
)
from tripwire.notify.routes import TokenBucket

pytestmark = pytest.mark.unit

HOOK = {"name": "h", "channel": "webhook", "url": "http://127.0.0.1:9/h"}


def _route(**match: object):
    return routes_from_dict({"routes": [{**HOOK, "match": match}]})[0]


def test_matching_on_severity_kind_agent_tenant_source() -> None:
    crit = from_alert(make_alert(severity="critical", kind="cost_spike", agent_id="refund-assistant", tenant="acme"))
    info = from_alert(make_alert(severity="info", kind="tool_error_rate", agent_id="search-bot", tenant="globex"))
    ks = from_command(make_command("agent:refund-assistant"))
    cases = {
        "all": ({}, [True, True, True]),
        "severity": ({"severity": ["critical"]}, [True, False, True]),
        "min_severity": ({"min_severity": "warning"}, [True, False, True]),
        "kind glob": ({"kind": ["cost_*", "killswitch"]}, [True, False, True]),
        "agent glob": ({"agent": "refund-*"}, [True, False, True]),
        "tenant": ({"tenant": ["globex"]}, [False, True, False]),  # a kill switch on an agent has no tenant
        "source": ({"source": ["killswitch"]}, [False, False, True]),
        "all keys": ({"severity": "critical", "kind": "cost_spike", "tenant": "acme"}, [True, False, False]),
    }
    for name, (match, expected) in cases.items():
        route = _route(**match)
        assert [route.matches(n) for n in (crit, info, ks)] == expected, name


def test_an_alert_without_agent_does_not_match_an_agent_pattern() -> None:
    alert = make_alert().model_copy(update={"agent_id": None})
    assert not _route(agent="*").matches(from_alert(alert))
    assert _route().matches(from_alert(alert))


def test_secrets_come_from_the_config_and_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPWIRE_NOTIFY_SECRETS__OPS_HOOK", "https://hooks.example/T1/B2/xyz")
    monkeypatch.setenv("TRIPWIRE_NOTIFY_SECRETS__HOOK_KEY", "k3y")
    monkeypatch.setenv("TRIPWIRE_NOTIFY_SECRETS__PD", "R0ut1ngKeyR0ut1ngKeyR0ut1ngKey32")
    config = NotifyConfig()
    routes = routes_from_dict(
        {"routes": [
            {"name": "w", "channel": "webhook", "url_secret": "ops_hook", "hmac_key_secret": "HOOK_KEY"},
            {"name": "p", "channel": "pagerduty", "routing_key_secret": "pd"},
        ]},
        config,
    )
    assert isinstance(routes[0].url, SecretStr) and routes[0].url.get_secret_value() == "https://hooks.example/T1/B2/xyz"
    assert routes[0].hmac_key is not None and routes[0].hmac_key.get_secret_value() == "k3y"
    assert "xyz" not in repr(routes) and "k3y" not in repr(routes) and "R0ut" not in repr(config)
    assert routes[1].request(from_alert(make_alert())).url == "https://events.pagerduty.com/v2/enqueue"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"routes": []}, "non-empty 'routes' list"),
        ({"routes": [HOOK], "extra": 1}, "unknown top-level keys ['extra']"),
        ({"routes": [{**HOOK, "channel": "email"}]}, "route 'h': channel:"),
        ({"routes": [{"name": "s", "channel": "slack"}]}, "route 's': a slack route needs url"),
        ({"routes": [{"name": "p", "channel": "pagerduty"}]}, "route 'p': a pagerduty route needs routing_key"),
        ({"routes": [{**HOOK, "url": "ftp://x"}]}, "url must start with http:// or https://"),
        ({"routes": [{**HOOK, "url_secret": "nope"}]}, "route 'h': give url or url_secret, not both"),
        ({"routes": [{"name": "h", "channel": "webhook", "url_secret": "missing"}]},
         "secret 'missing' for url is not set (set TRIPWIRE_NOTIFY_SECRETS__MISSING)"),
        ({"routes": [{**HOOK, "match": {"severity": ["huge"]}}]}, "route 'h': match.severity.0:"),
        ({"routes": [{**HOOK, "match": {"colour": "red"}}]}, "route 'h': match.colour:"),
        ({"routes": [{**HOOK, "rate_limit": {"per_minute": 0}}]}, "route 'h': rate_limit.per_minute:"),
        ({"routes": [HOOK, HOOK]}, "duplicate route names ['h']"),
        ({"routes": [{**HOOK, "channel": "slack", "hmac_key": "k"}]}, "hmac_key only applies to webhook routes"),
    ],
)
def test_bad_routes_name_the_route_and_field(doc: dict, message: str) -> None:
    with pytest.raises(RoutesError) as e:
        routes_from_dict(doc, NotifyConfig(secrets={}))
    assert message in str(e.value)
    assert isinstance(e.value, ConfigError)


def test_load_routes_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RoutesError, match="cannot read"):
        load_routes(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: [\n")
    with pytest.raises(RoutesError, match="not valid YAML"):
        load_routes(bad)


def test_the_shipped_example_loads_with_its_secrets() -> None:
    example = resources.files("tripwire.notify") / "routes.example.yaml"
    config = NotifyConfig(secrets={"pagerduty_oncall": "R0ut1ngKeyR0ut1ngKeyR0ut1ngKey32",
                                   "slack_ops": "https://hooks.slack.com/services/T/B/x",
                                   "audit_webhook_url": "https://audit.example/hook", "audit_webhook_key": "k"})
    routes = load_routes(Path(str(example)), config)
    assert [(r.name, r.channel) for r in routes] == [
        ("oncall-pagerduty", "pagerduty"), ("ops-slack", "slack"), ("killswitch-audit-webhook", "webhook")]
    ks = from_command(make_command())
    assert [r.matches(ks) for r in routes] == [True, True, True]
    warn = from_alert(make_alert(severity="warning"))
    assert [r.matches(warn) for r in routes] == [False, True, False]


def test_token_bucket() -> None:
    b = TokenBucket(RateLimit(per_minute=60, burst=2), now=0.0)  # one token per second, two at most
    assert [b.try_take(0.0), b.try_take(0.0), b.try_take(0.0)] == [True, True, False]
    assert b.wait_s(0.0) == pytest.approx(1.0)
    assert b.try_take(0.5) is False and b.wait_s(0.5) == pytest.approx(0.5)
    assert b.try_take(1.0) is True
    assert [b.try_take(100.0), b.try_take(100.0), b.try_take(100.0)] == [True, True, False]  # capped at burst


def test_config_env_prefix_frozen_and_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPWIRE_KAFKA_BOOTSTRAP", "broker:1")
    monkeypatch.setenv("TRIPWIRE_NOTIFY_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("TRIPWIRE_NOTIFY_TOPIC_PREFIX", "t_1")
    c = NotifyConfig()
    assert (c.bootstrap, c.max_attempts, c.consumer_group) == ("broker:1", 7, "t_1.tripwire-notify")
    with pytest.raises(ValidationError):
        c.max_attempts = 3  # type: ignore[misc]
    with pytest.raises(ValidationError, match="BACKOFF_MAX_S"):
        NotifyConfig(backoff_initial_s=5, backoff_max_s=1)
    with pytest.raises(ValidationError):
        NotifyConfig(max_attempts=0)
