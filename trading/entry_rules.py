"""Entry planning, pure (the live path and the backtester share it): the order type and
limit of an entry from the quote, and the stop/targets after per-symbol percentages."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from risk.config import RiskConfig, SymbolParams
from trading.fill_model import pegged_entry_limit

CENT = Decimal("0.01")


def _q(value: Decimal) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def entry_plan(
    *, side: str, ref_price: Decimal, quote, config: RiskConfig
) -> tuple[str, Decimal | None, str]:
    """Pegged limit at mid ∓ ENTRY_LIMIT_OFFSET_BPS when the spread is tight enough, else
    market. Returns (order_type, limit price or None, why)."""
    spread = quote.spread_bps if quote is not None else None
    if spread is not None and spread <= config.entry_spread_bps and quote.mid:
        limit = pegged_entry_limit(quote.mid, side, config.entry_limit_offset_bps)
        return "limit", limit, f"spread {spread:.1f} bps <= {config.entry_spread_bps}"
    why = "no quote" if spread is None else f"spread {spread:.1f} bps > {config.entry_spread_bps}"
    return "market", None, why


def bracket_levels(
    *, entry: Decimal, params: SymbolParams, stop: Decimal | None, t1, t2
) -> tuple[Decimal | None, Decimal | None, Decimal | None, bool]:
    """Stop/targets after per-symbol percentages: STOP_PCT sets the stop, TP_PCT the single
    target; both set → a broker-side OTOCO bracket. Returns (stop, t1, t2, use_otoco)."""
    if params.stop_pct:
        stop = _q(entry * (1 - params.stop_pct))
    if params.tp_pct:
        t1, t2 = None, _q(entry * (1 + params.tp_pct))
    return stop, t1, t2, bool(params.stop_pct and params.tp_pct)
