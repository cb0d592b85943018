"""The one place analytics reads trading costs from, so the drift ledger charges what paper
fills and backtests charge: the symbol's cost model (`risk.costs.CostModel`: the COST_* and
PAPER_* settings, then the symbol's override row), the same model `trading.core.fills` prices
every paper and backtest fill with and sizing plans with.
"""

from __future__ import annotations

from decimal import Decimal


def cost_model(symbol: str):
    """The cost model paper trading and backtests charge `symbol` (a risk.costs.CostModel)."""
    from risk.selectors import symbol_params_get

    return symbol_params_get(symbol=symbol).costs


def market_adverse_bps(symbol: str, price) -> float | None:
    """Basis points of `price` a market fill of `symbol` is charged against the bar's open
    (half the spread plus the slippage, before rounding to the tick); None without a price."""
    if price is None or Decimal(str(price)) <= 0:
        return None
    price = Decimal(str(price))
    return float(cost_model(symbol).adverse_at(price) / price * Decimal(10000))
