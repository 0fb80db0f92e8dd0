"""The price table (``prices.yaml``, package data) and the cost of one call."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from pydantic import BaseModel, Field

PRICES_FILE = Path(__file__).with_name("prices.yaml")


class Price(BaseModel):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached: float | None = Field(None, ge=0, description="cached input; default: the input price")


class PriceTable(BaseModel):
    updated: str
    models: dict[str, Price]

    def price(self, model: str | None) -> Price | None:
        """The model's price: an exact name, else the longest listed name it starts with
        (dated snapshots such as ``claude-sonnet-4-6-20260101``)."""
        if not model:
            return None
        if model in self.models:
            return self.models[model]
        prefixes = [m for m in self.models if model.startswith(m + "-")]
        return self.models[max(prefixes, key=len)] if prefixes else None

    def cost(self, model: str | None, input_tokens: int, output_tokens: int,
             cached_tokens: int = 0) -> float | None:
        """USD for one call; ``input_tokens`` counts the cached ones too. None: no price."""
        p = self.price(model)
        if p is None:
            return None
        cached = min(cached_tokens, input_tokens)
        cached_price = p.input if p.cached is None else p.cached
        return ((input_tokens - cached) * p.input + cached * cached_price
                + output_tokens * p.output) / 1e6


@functools.lru_cache(maxsize=4)
def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    return PriceTable.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
