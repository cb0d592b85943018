"""The one place analytics reads trading costs from, so the drift ledger charges what paper
fills and backtests charge.

Today that is the paper broker's fill costs (`trading.brokers.paper.fill_costs_from_settings`:
PAPER_SPREAD_BPS, PAPER_SLIPPAGE_BPS, the same for every symbol, as backtests read them).
When the per-symbol cost model (`risk.costs`, CONTRACTS.md item 2) lands, this adapter is the
only code to switch.
"""

from __future__ import annotations


def fill_costs(symbol: str):
    """The fill costs paper trading charges `symbol` (a trading.core.fills.FillCosts)."""
    from trading.brokers.paper import fill_costs_from_settings

    return fill_costs_from_settings()


def market_adverse_bps(symbol: str) -> float:
    """Basis points a market fill of `symbol` is charged against the bar's open (half the
    spread plus the slippage)."""
    return float(fill_costs(symbol).adverse_bps)
