"""Token and cost estimates printed before any paid call.

Prices are USD per million tokens, OpenAI's list prices for the named models as published in
2025 (override with ``--llm-price-in/--llm-price-out``); the Batch API bills half.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

PRICES_PER_M: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
}
BATCH_DISCOUNT = 0.5


@dataclass
class Estimate:
    requests: int
    input_tokens: int
    max_output_tokens: int
    exact_tokenizer: bool
    cost_usd: float | None

    def summary(self) -> str:
        how = "tiktoken" if self.exact_tokenizer else "~4 chars/token (tiktoken encodings unavailable)"
        cost = f", at most ${self.cost_usd:,.2f}" if self.cost_usd is not None else ""
        return (
            f"{self.requests} requests, ~{self.input_tokens:,} input tokens ({how}), "
            f"<= {self.max_output_tokens:,} output tokens{cost}"
        )


def _counter() -> tuple[Any, bool]:
    try:
        import tiktoken

        enc = tiktoken.get_encoding("o200k_base")
        return (lambda text: len(enc.encode(text))), True
    except Exception:  # offline: tiktoken downloads its encodings on first use
        return (lambda text: max(1, len(text) // 4)), False


def usd(tokens_in: int, tokens_out: int, price: tuple[float, float], batch: bool = False) -> float:
    """What the tokens cost at ``price`` (USD per 1M input and per 1M output tokens), with the
    Batch API's discount when ``batch``."""
    return (tokens_in * price[0] + tokens_out * price[1]) / 1e6 * (BATCH_DISCOUNT if batch else 1.0)


def estimate(
    requests: list[dict[str, Any]],
    model: str | None,
    batch: bool,
    prices: tuple[float, float] | None = None,
) -> Estimate:
    """Estimate tokens (input counted, output bounded by ``max_tokens``) and cost in USD."""
    count, exact = _counter()
    tokens_in = 0
    tokens_out = 0
    for req in requests:
        body = req["body"]
        tokens_in += sum(count(m["content"]) + 4 for m in body["messages"])
        tokens_out += int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
    price = prices or (PRICES_PER_M.get(model) if model else None)
    cost = usd(tokens_in, tokens_out, price, batch) if price else None
    return Estimate(len(requests), tokens_in, tokens_out, exact, cost)
