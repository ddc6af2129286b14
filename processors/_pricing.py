"""Split a model call's reported cost into token kinds.

A ModelCall carries one ``cost_usd``. To split it by token kind we weight each kind's
token count by its list price (genai-prices, bundled data, no I/O) and allocate the
reported cost in proportion, in integer nano-dollars so that sums do not depend on
the order events arrive in. Reasoning tokens are billed at the output rate. When the
model has no list price we fall back to typical list-price ratios (documented below).
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Any

NANOS_PER_USD = 1_000_000_000

#: Token kinds in the order RunSummary lists them.
KINDS = ("input", "cache_read", "cache_write", "output", "reasoning")

#: Relative per-token prices used when a model has no list price: cache reads at a tenth of
#: input, cache writes at 1.25x, output and reasoning at 4x (the common ratios of list prices).
FALLBACK_WEIGHTS = (1.0, 0.1, 1.25, 4.0, 4.0)


def to_nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


def _price(value: Any) -> float | None:
    if value is None:
        return None
    base = getattr(value, "base", value)
    return float(base) if isinstance(base, Decimal | int | float) else None


@lru_cache(maxsize=1024)
def price_weights(provider: str, model: str) -> tuple[float, float, float, float, float]:
    """Per-token relative prices (input, cache_read, cache_write, output, reasoning)."""
    try:
        from genai_prices import Usage, calc_price

        mp = calc_price(Usage(input_tokens=1), model_ref=model, provider_id=provider or None).model_price
    except Exception:  # unknown model or provider: typical ratios
        return FALLBACK_WEIGHTS
    inp = _price(getattr(mp, "input_mtok", None))
    out = _price(getattr(mp, "output_mtok", None))
    if not inp or not out:
        return FALLBACK_WEIGHTS
    cache_read = _price(getattr(mp, "cache_read_mtok", None))
    cache_write = _price(getattr(mp, "cache_write_mtok", None))
    return (
        inp,
        cache_read if cache_read is not None else inp,
        cache_write if cache_write is not None else inp,
        out,
        out,
    )


def split_cost(nanos: int, tokens: tuple[int, int, int, int, int], weights: tuple[float, ...]) -> list[int]:
    """Allocate ``nanos`` over the token kinds in proportion to tokens x weight.

    The parts are integers that sum exactly to ``nanos`` (largest remainder method; ties go to
    the earlier kind). With no tokens at all, everything goes to input.
    """
    shares = [t * w for t, w in zip(tokens, weights, strict=True)]
    total = sum(shares)
    if nanos == 0 or total <= 0:
        return [nanos, 0, 0, 0, 0]
    exact = [nanos * s / total for s in shares]
    parts = [int(x) for x in exact]
    remainder = nanos - sum(parts)
    if remainder:
        order = sorted(range(len(parts)), key=lambda i: (-(exact[i] - parts[i]), i))
        for i in order[: abs(remainder)]:
            parts[i] += 1 if remainder > 0 else -1
    return parts


def load_prices() -> None:
    """Load the bundled price list now (genai-prices reads it on first use: ~0.3 s), so that the
    first model call a worker reads does not stall its stage (and the alerts behind it)."""
    price_weights("openai", "gpt-4o")
