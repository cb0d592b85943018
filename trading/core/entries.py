"""Entry planning, pure: the order type and limit of an entry from the quote, the stop and
targets after the per-symbol percentages, and the whole plan a trade is opened with."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from risk.config import RiskConfig, SymbolParams
from trading.core.fills import pegged_entry_limit
from trading.core.types import TradePlan, to_cent


def entry_plan(
    *, side: str, ref_price: Decimal, quote, config: RiskConfig
) -> tuple[str, Decimal | None, str]:
    """Pegged limit at mid -/+ ENTRY_LIMIT_OFFSET_BPS when the spread is tight enough, else
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
    target; both set -> a broker-side OTOCO bracket. Returns (stop, t1, t2, use_otoco)."""
    if params.stop_pct:
        stop = to_cent(entry * (1 - params.stop_pct))
    if params.tp_pct:
        t1, t2 = None, to_cent(entry * (1 + params.tp_pct))
    return stop, t1, t2, bool(params.stop_pct and params.tp_pct)


def trade_plan(
    *,
    qty: int,
    entry: Decimal,
    stop: Decimal,
    target_one: Decimal | None,
    target_two: Decimal | None,
    bracket: bool,
    params: SymbolParams,
    config: RiskConfig,
    now: datetime,
    quote,
    time_stop_sec: float | None = None,
) -> TradePlan:
    """The plan of an approved trade: levels rounded to the cent, the deadline (the session
    policy's time stop, else TRADE_TIMEOUT_MIN) and the entry order. A bracket's entry is a
    market order: its legs are priced from the entry, and a pegged leg 0 cannot be turned into
    a market order without re-sending the bracket."""
    timeout = (
        timedelta(seconds=float(time_stop_sec))
        if time_stop_sec
        else timedelta(minutes=config.trade_timeout_min)
    )
    order_type, limit, why = entry_plan(side="buy", ref_price=entry, quote=quote, config=config)
    if bracket:
        order_type, limit, why = "market", None, f"bracket entry at market ({why})"
    return TradePlan(
        qty=int(qty),
        stop=to_cent(stop),
        target_one=to_cent(target_one),
        target_two=to_cent(target_two),
        deadline=now + timeout,
        trail_pct=params.trail_pct,
        trail_act_pct=params.trail_act_pct,
        entry_type=order_type,
        entry_limit=limit,
        entry_why=why,
        bracket=bracket,
    )
