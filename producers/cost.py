"""Cost of a model call, in US dollars, with its source.

Token convention (the event contract's): the five kinds are *disjoint*. ``input_tokens`` are the
uncached prompt tokens (cache reads and writes are not in it) and ``output_tokens`` exclude
``reasoning_tokens``. Each kind is priced at its own rate exactly once:

    input x input price + cache reads x cache-read price + cache writes x cache-write price
    + output x output price + reasoning x reasoning price (= output price unless overridden)

(genai-prices counts cache tokens inside the prompt total and reasoning inside the completion, so the
totals handed to it are the sums.)

Precedence: a cost the provider reported (``provider_reported``) > a local override file (custom or
negotiated prices: regex model match, the newest start date not after the call wins) > the genai-prices
table (``price_table``). An unknown model gets ``cost_usd=None`` and ``cost_source=unknown``: never a guess.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tripwire.core.errors import ConfigError

logger = logging.getLogger(__name__)

PROVIDER_REPORTED = "provider_reported"
PRICE_TABLE = "price_table"
UNKNOWN = "unknown"
_MTOK = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    input_usd: float
    cache_read_usd: float
    cache_write_usd: float
    output_usd: float
    reasoning_usd: float


@dataclass(frozen=True, slots=True)
class CostResult:
    cost_usd: float | None
    cost_source: str
    price_version: str | None = None
    breakdown: CostBreakdown | None = None


class PriceOverride(BaseModel):
    """One entry of the override file; prices are USD per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, description="regular expression, full match against the model name")
    provider: str | None = None
    start_date: date
    input_mtok: Decimal = Field(ge=0)
    output_mtok: Decimal = Field(ge=0)
    cache_read_mtok: Decimal | None = Field(default=None, ge=0)
    cache_write_mtok: Decimal | None = Field(default=None, ge=0)
    reasoning_mtok: Decimal | None = Field(default=None, ge=0)
    version: str | None = None

    @field_validator("model")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"model is not a valid regular expression: {e}") from e
        return value


def _split(usage: TokenUsage) -> tuple[int, int, int, int, int]:
    return (
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
    )


def _priced(usage: TokenUsage, inp: Decimal, cr: Decimal, cw: Decimal, out: Decimal, rs: Decimal) -> CostBreakdown:
    n_in, n_cr, n_cw, n_out, n_rs = _split(usage)
    return CostBreakdown(
        input_usd=float(n_in * inp / _MTOK),
        cache_read_usd=float(n_cr * cr / _MTOK),
        cache_write_usd=float(n_cw * cw / _MTOK),
        output_usd=float(n_out * out / _MTOK),
        reasoning_usd=float(n_rs * rs / _MTOK),
    )


def _total(parts: CostBreakdown) -> float:
    return parts.input_usd + parts.cache_read_usd + parts.cache_write_usd + parts.output_usd + parts.reasoning_usd


class PriceOverrides:
    """Custom or negotiated prices: regex model match, the newest ``start_date`` on or before the call wins."""

    def __init__(self, entries: list[PriceOverride]) -> None:
        self._entries = sorted(entries, key=lambda e: e.start_date, reverse=True)
        self._compiled = [(re.compile(e.model), e) for e in self._entries]

    @classmethod
    def load(cls, path: str | Path) -> PriceOverrides:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            raw: Any = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read price overrides {p}: {e}") from e
        items = raw.get("prices") if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise ConfigError(f"price overrides {p}: expected a list under 'prices'")
        entries = []
        for i, item in enumerate(items):
            try:
                entries.append(PriceOverride.model_validate(item))
            except ValidationError as e:
                where = "; ".join(f"prices[{i}].{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
                raise ConfigError(f"price overrides {p}: {where}") from e
        return cls(entries)

    def find(self, provider: str, model: str, day: date) -> PriceOverride | None:
        for pattern, entry in self._compiled:  # newest first
            if entry.start_date > day:
                continue
            if entry.provider is not None and entry.provider != provider:
                continue
            if pattern.fullmatch(model):
                return entry
        return None


@lru_cache(maxsize=1)
def _genai_prices() -> tuple[Any, Any, str]:
    import genai_prices

    return genai_prices.calc_price, genai_prices.Usage, f"genai-prices/{genai_prices.__version__}"


class CostCalculator:
    """Prices model calls; safe to share between threads."""

    def __init__(self, overrides: PriceOverrides | None = None) -> None:
        self._overrides = overrides
        self._unknown: set[tuple[str, str]] = set()
        # (provider, model) -> flat per-MTok prices (input, cache read, cache write, output), for models
        # whose price has no tiers, no per-request fee and no date/time conditions, and only after the
        # first call's result was checked equal to genai-prices' own total (the OTLP receiver's hot path)
        self._flat: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal, Decimal]] = {}

    def compute(
        self,
        provider: str,
        model: str,
        usage: TokenUsage,
        *,
        provider_cost_usd: float | None = None,
        at: datetime | None = None,
    ) -> CostResult:
        if provider_cost_usd is not None:
            return CostResult(float(provider_cost_usd), PROVIDER_REPORTED, None, None)
        when = at or datetime.now(UTC)
        if self._overrides is not None:
            entry = self._overrides.find(provider, model, when.date())
            if entry is not None:
                parts = _priced(
                    usage,
                    entry.input_mtok,
                    entry.input_mtok if entry.cache_read_mtok is None else entry.cache_read_mtok,
                    entry.input_mtok if entry.cache_write_mtok is None else entry.cache_write_mtok,
                    entry.output_mtok,
                    entry.output_mtok if entry.reasoning_mtok is None else entry.reasoning_mtok,
                )
                version = entry.version or f"override/{entry.start_date.isoformat()}"
                return CostResult(_total(parts), PRICE_TABLE, version, parts)
        return self._from_table(provider, model, usage, when)

    def _from_table(self, provider: str, model: str, usage: TokenUsage, when: datetime) -> CostResult:
        if (provider, model) in self._unknown:
            return CostResult(None, UNKNOWN)
        calc_price, usage_cls, version = _genai_prices()
        flat = self._flat.get((provider, model))
        if flat is not None:
            return _flat_result(usage, flat, version)
        try:
            calc = calc_price(
                usage_cls(
                    input_tokens=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
                    cache_read_tokens=usage.cache_read_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                    output_tokens=usage.output_tokens + usage.reasoning_tokens,
                ),
                model,
                provider_id=provider,
                genai_request_timestamp=when,
            )
        except LookupError:
            if len(self._unknown) < 10_000:
                self._unknown.add((provider, model))
            logger.info("no price for model provider=%s model=%s cost_source=unknown", provider, model)
            return CostResult(None, UNKNOWN)
        except Exception as e:  # a pricing bug must not become a made-up number or an agent crash
            logger.warning("pricing failed provider=%s model=%s error=%s", provider, model, type(e).__name__)
            return CostResult(None, UNKNOWN)
        mp = calc.model_price
        prices = [getattr(mp, k, None) for k in ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok")]
        parts = None
        inp, cr, cw, out = prices
        if (
            isinstance(inp, Decimal)
            and isinstance(out, Decimal)
            and all(p is None or isinstance(p, Decimal) for p in prices)
        ):
            parts = _priced(usage, inp, inp if cr is None else cr, inp if cw is None else cw, out, out)
            if _flat_eligible(calc) and len(self._flat) < 10_000:
                flat = (inp, inp if cr is None else cr, inp if cw is None else cw, out)  # type: ignore[assignment]
                if _flat_result(usage, flat, version).cost_usd == float(calc.total_price):  # type: ignore[arg-type]
                    self._flat[(provider, model)] = flat  # type: ignore[assignment]
        return CostResult(float(calc.total_price), PRICE_TABLE, version, parts)


def _flat_eligible(calc: Any) -> bool:
    """A single, unconditional price (no date or time-of-day variants), without tiers or per-request fee."""
    try:
        from genai_prices.types import ModelPrice, TieredPrices
    except ImportError:  # pragma: no cover - a future layout: just do not cache
        return False
    mp = calc.model_price
    if not isinstance(getattr(calc.model, "prices", None), ModelPrice):
        return False
    values = {k: v for k, v in vars(mp).items() if v is not None}
    return "requests_kcount" not in values and not any(isinstance(v, TieredPrices) for v in values.values())


def _flat_result(usage: TokenUsage, flat: tuple[Decimal, Decimal, Decimal, Decimal], version: str) -> CostResult:
    inp, cr, cw, out = flat
    parts = _priced(usage, inp, cr, cw, out, out)
    n_in, n_cr, n_cw, n_out, n_rs = _split(usage)
    total = (n_in * inp + n_cr * cr + n_cw * cw + (n_out + n_rs) * out) / _MTOK
    return CostResult(float(total), PRICE_TABLE, version, parts)


__all__ = [
    "PRICE_TABLE",
    "PROVIDER_REPORTED",
    "UNKNOWN",
    "CostBreakdown",
    "CostCalculator",
    "CostResult",
    "PriceOverride",
    "PriceOverrides",
    "TokenUsage",
]
