"""The one rounding rule for turning tokens into money, shared by admission (reserve, settle) and
metering (the bill).

Prices are integer micro-USD per 1M tokens (``PriceEntry``). A request's cost is the exact sum over
token kinds of ``tokens × price``, in micro-USD × 10⁻⁶, rounded UP once to a whole micro-USD:

    cost_micros = ceil( Σ tokens_k × micros_per_mtok_k / 1,000,000 )

Rounding once per request (not per token kind) keeps the error below 1 micro-USD per request; rounding
up means a reservation made from upper-bound token counts is never smaller than the settled cost.

A batch request (``batch=True``) pays every amount less the price's ``batch_discount_bps``; the factor
goes inside the same single division, so the discounted cost is rounded once, by the same rule:

    cost_micros = ceil( Σ tokens_k × micros_per_mtok_k × (10,000 − bps) / (1,000,000 × 10,000) )
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.events.catalog import PriceEntry

TOKENS_PER_PRICE_UNIT = 1_000_000
BASIS_POINTS = 10_000


@dataclass(frozen=True)
class TokenCounts:
    """Token counts by price kind. ``input`` excludes cached and cache-write tokens (priced apart)."""

    input: int = 0
    cached_input: int = 0
    cache_write: int = 0
    output: int = 0

    @property
    def total(self) -> int:
        return self.input + self.cached_input + self.cache_write + self.output


def cost_micros(price: PriceEntry | None, tokens: TokenCounts, *, batch: bool = False) -> int:
    """Integer micro-USD for ``tokens`` at ``price``; a model without a price costs nothing."""
    if price is None:
        return 0
    exact = (
        tokens.input * price.input_micros_per_mtok
        + tokens.cached_input * price.cached_input_micros_per_mtok
        + tokens.cache_write * price.cache_write_micros_per_mtok
        + tokens.output * price.output_micros_per_mtok
    )
    if not batch:
        return -(-exact // TOKENS_PER_PRICE_UNIT)
    discounted = exact * (BASIS_POINTS - price.batch_discount_bps)
    return -(-discounted // (TOKENS_PER_PRICE_UNIT * BASIS_POINTS))
