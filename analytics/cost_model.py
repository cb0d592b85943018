"""The one place analytics reads trading costs from, so the drift ledger charges what paper
fills and backtests charge.

Today that is the paper fill model's costs (PAPER_SPREAD_BPS, PAPER_SLIPPAGE_BPS, the same for
every symbol, as `analytics.backtest.config.BacktestConfig` and the paper broker read them).
When the per-symbol cost model (`risk.costs`, CONTRACTS.md item 2) lands, this adapter is the
only code to switch.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings


def fill_costs(symbol: str):
    """The fill model's costs for `symbol` (a trading.fill_model.FillCosts)."""
    from trading.fill_model import FillCosts

    return FillCosts(
        slippage_bps=Decimal(str(settings.PAPER_SLIPPAGE_BPS)),
        spread_bps=Decimal(str(settings.PAPER_SPREAD_BPS)),
    )


def market_adverse_bps(symbol: str) -> float:
    """Basis points a market fill of `symbol` is charged against the bar's open (half the
    spread plus the slippage)."""
    return float(fill_costs(symbol).adverse_bps)
