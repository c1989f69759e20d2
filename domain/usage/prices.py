"""The versioned price table: USD per million tokens, by model.

Every ledger row records the version it was priced with, so a new table never reprices the
past. A model not listed is priced as the dearest listed one (budgets stay conservative).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_write: float
    cache_read: float


VERSION = "2026-11-01"
PRICES: dict[str, Price] = {
    "claude-opus-4-1": Price(input=15.0, output=75.0, cache_write=18.75, cache_read=1.50),
    "claude-sonnet-4-5": Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.30),
    "claude-haiku-4-5": Price(input=1.0, output=5.0, cache_write=1.25, cache_read=0.10),
}
_DEAREST = max(PRICES.values(), key=lambda p: p.output)


def price(model: str) -> Price:
    """The price of `model` (dated snapshots such as `-20250929` priced as their family)."""
    for name, found in PRICES.items():
        if model == name or model.startswith(f"{name}-"):
            return found
    return _DEAREST


def cost_micros(model: str, *, input_tokens: int, output_tokens: int,
                cache_creation_input_tokens: int = 0, cache_read_input_tokens: int = 0) -> int:
    """The cost in micro-USD (USD per million tokens x tokens = micro-USD), rounded up."""
    p = price(model)
    exact = (input_tokens * p.input + output_tokens * p.output
             + cache_creation_input_tokens * p.cache_write
             + cache_read_input_tokens * p.cache_read)
    return int(-(-exact // 1))
