"""Cost against hand-computed expectations (list prices per million tokens, genai-prices data)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.unit._sdk_fixtures import make_tracer
from tripwire.core.errors import ConfigError
from tripwire.producers.cost import CostCalculator, PriceOverrides, TokenUsage
from tripwire.schemas import ModelCall

pytestmark = pytest.mark.unit
EXACT = {"rel": 1e-12, "abs": 0.0}


def test_cached_tokens_priced_at_the_cache_read_rate() -> None:
    # gpt-4.1-mini: $0.40 input, $0.10 cached input, $1.60 output per MTok
    r = CostCalculator().compute(
        "openai", "gpt-4.1-mini", TokenUsage(input_tokens=412, cache_read_tokens=400, output_tokens=95)
    )
    assert r.cost_usd == pytest.approx(412 * 0.40e-6 + 400 * 0.10e-6 + 95 * 1.60e-6, **EXACT)
    assert r.cost_usd == pytest.approx(0.0003568, **EXACT)
    assert r.cost_source == "price_table" and r.price_version.startswith("genai-prices/")
    assert r.breakdown is not None
    assert (r.breakdown.input_usd, r.breakdown.cache_read_usd, r.breakdown.output_usd) == pytest.approx(
        (0.0001648, 0.00004, 0.000152), **EXACT
    )


def test_reasoning_tokens_priced_once_at_the_output_rate() -> None:
    # o3-mini: $1.10 input, $4.40 output per MTok; reasoning is billed as output, separately counted
    r = CostCalculator().compute(
        "openai", "o3-mini", TokenUsage(input_tokens=1000, output_tokens=200, reasoning_tokens=300)
    )
    assert r.cost_usd == pytest.approx(1000 * 1.10e-6 + 200 * 4.40e-6 + 300 * 4.40e-6, **EXACT)
    assert r.cost_usd == pytest.approx(0.0033, **EXACT)
    assert (r.breakdown.output_usd, r.breakdown.reasoning_usd) == pytest.approx((0.00088, 0.00132), **EXACT)


def test_cache_writes_at_their_own_rate() -> None:
    # claude-3-5-sonnet: $3 input, $0.30 cache read, $3.75 cache write, $15 output per MTok
    r = CostCalculator().compute(
        "anthropic",
        "claude-3-5-sonnet-latest",
        TokenUsage(input_tokens=500, cache_read_tokens=200, cache_write_tokens=300, output_tokens=100),
    )
    assert r.cost_usd == pytest.approx(500 * 3e-6 + 200 * 0.3e-6 + 300 * 3.75e-6 + 100 * 15e-6, **EXACT)
    assert r.cost_usd == pytest.approx(0.004185, **EXACT)


def test_provider_reported_cost_wins() -> None:
    r = CostCalculator().compute("openai", "gpt-4.1-mini", TokenUsage(input_tokens=10**6), provider_cost_usd=0.0123)
    assert (r.cost_usd, r.cost_source, r.price_version) == (0.0123, "provider_reported", None)


def test_unknown_model_is_null_never_a_guess() -> None:
    calc = CostCalculator()
    for _ in range(2):  # second time from the negative cache
        r = calc.compute("openai", "acme-internal-llm-7", TokenUsage(input_tokens=100, output_tokens=100))
        assert (r.cost_usd, r.cost_source, r.price_version) == (None, "unknown", None)
    r = calc.compute("no-such-provider", "gpt-4.1-mini", TokenUsage(input_tokens=100))
    assert (r.cost_usd, r.cost_source) == (None, "unknown")


OVERRIDES = """
prices:
  - model: "gpt-4\\\\.1-mini(-\\\\d{4}-\\\\d{2}-\\\\d{2})?"
    provider: openai
    start_date: 2024-01-01
    input_mtok: 0.20
    output_mtok: 0.80
  - model: "gpt-4\\\\.1-mini(-\\\\d{4}-\\\\d{2}-\\\\d{2})?"
    provider: openai
    start_date: 2025-06-01
    input_mtok: 0.10
    cache_read_mtok: 0.01
    output_mtok: 0.50
    version: negotiated-2025
  - model: "gpt-4\\\\.1-mini.*"
    start_date: 2099-01-01
    input_mtok: 100
    output_mtok: 100
  - model: "acme-.*"
    start_date: 2024-01-01
    input_mtok: 1
    output_mtok: 2
    reasoning_mtok: 3
"""


def test_override_file_regex_and_newest_start_date(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(OVERRIDES)
    calc = CostCalculator(PriceOverrides.load(path))
    u = TokenUsage(input_tokens=1000, cache_read_tokens=1000, output_tokens=1000)
    newest = calc.compute("openai", "gpt-4.1-mini-2025-04-14", u, at=datetime(2025, 7, 1, tzinfo=UTC))
    assert newest.cost_usd == pytest.approx(1000 * 0.10e-6 + 1000 * 0.01e-6 + 1000 * 0.50e-6, **EXACT)
    assert (newest.cost_source, newest.price_version) == ("price_table", "negotiated-2025")
    older = calc.compute("openai", "gpt-4.1-mini", u, at=datetime(2025, 1, 1, tzinfo=UTC))
    # no cache-read price in that entry: cache reads at the input rate
    assert older.cost_usd == pytest.approx(2000 * 0.20e-6 + 1000 * 0.80e-6, **EXACT)
    assert older.price_version == "override/2024-01-01"
    other_provider = calc.compute("azure", "gpt-4.1-mini", u, at=datetime(2025, 7, 1, tzinfo=UTC))
    assert other_provider.price_version.startswith("genai-prices/")  # provider-scoped overrides do not apply
    custom = calc.compute("x", "acme-internal", TokenUsage(input_tokens=10, output_tokens=10, reasoning_tokens=10))
    assert custom.cost_usd == pytest.approx(10e-6 + 20e-6 + 30e-6, **EXACT)


def test_override_file_errors_name_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("prices:\n  - model: '('\n    start_date: 2024-01-01\n    input_mtok: 1\n    output_mtok: 1\n")
    with pytest.raises(ConfigError, match=r"prices\[0\]\.model"):
        PriceOverrides.load(path)


def test_costs_on_the_emitted_events(tmp_path: Path) -> None:
    tracer, got = make_tracer(tmp_path, agent={"max_cost_usd": 1.0})
    with tracer.run() as run:
        with run.model_call(provider="openai", model="gpt-4.1-mini") as c:
            c.record_usage(input_tokens=412, cache_read_tokens=400, output_tokens=95)
        with run.model_call(provider="openai", model="o3-mini") as c:
            c.record_usage(input_tokens=1000, output_tokens=200, reasoning_tokens=300)
        with run.model_call(provider="openai", model="gpt-4.1") as c:
            c.record_usage(input_tokens=5, output_tokens=5, cost_usd=0.25)
        with run.model_call(provider="acme", model="acme-internal-llm-7") as c:
            c.record_usage(input_tokens=5, output_tokens=5)
        spent = run.budget.cost_usd
    tracer.close()
    got_costs = [(m.cost_usd, m.cost_source) for m in got.of(ModelCall)]
    assert got_costs[0] == (pytest.approx(0.0003568, **EXACT), "price_table")
    assert got_costs[1] == (pytest.approx(0.0033, **EXACT), "price_table")
    assert got_costs[2] == (0.25, "provider_reported")
    assert got_costs[3] == (None, "unknown")
    assert spent == pytest.approx(0.0003568 + 0.0033 + 0.25, **EXACT)
    mc = got.of(ModelCall)[1]
    assert (mc.input_tokens, mc.output_tokens, mc.reasoning_tokens) == (1000, 200, 300)


def test_flat_price_cache_gives_genai_prices_own_totals() -> None:
    """CostCalculator caches flat (untiered, unconditional) prices per model after checking the first result;
    every later result must equal what genai-prices computes itself, tiered/conditional models are not cached."""
    import random

    rng = random.Random(7)
    cached, fresh = CostCalculator(), CostCalculator
    models = [("openai", "gpt-4o-mini-2024-07-18"), ("openai", "gpt-4o"), ("google", "gemini-2.5-pro"),
              ("deepseek", "deepseek-chat"), ("anthropic", "claude-3-5-haiku-latest")]  # fmt: skip
    from tripwire.producers import TokenUsage

    for provider, model in models:
        for _ in range(200):
            u = TokenUsage(*(rng.randint(0, n) for n in (300_000, 5_000, 3_000, 5_000, 2_000)))
            assert cached.compute(provider, model, u) == fresh().compute(provider, model, u)
    assert ("openai", "gpt-4o") in cached._flat and ("google", "gemini-2.5-pro") not in cached._flat
