"""Paper fill rules: pure functions of an order and a bar, shared by the live/replay paper
broker and the backtester (no database, no clock).

Convention (decide at a bar's close, fill on a LATER bar):
- market: the bar's open, worse by half the spread plus the slippage (buys up, sells down);
- limit: when the bar trades through the limit: at the open if it gapped past it, else at the
  limit (no slippage: a resting limit is price-protected);
- stop: when the bar crosses the stop: at the open if it gapped through it, else at the stop,
  then worse by half the spread plus the slippage (a triggered stop is a market order);
- stop_limit: triggered like a stop, then fills at its limit only if the bar reached it.
Within one bar, when several exits of the same position could fill, stops are taken before
limits (the conservative order); market orders fill first, at the open.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
TEN_K = Decimal(10000)


@dataclass(frozen=True, slots=True)
class BarPrices:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal

    @classmethod
    def of(cls, bar) -> BarPrices:
        return cls(*(Decimal(str(getattr(bar, k))) for k in ("open", "high", "low", "close")))


@dataclass(frozen=True, slots=True)
class FillCosts:
    slippage_bps: Decimal = Decimal("1")
    spread_bps: Decimal = Decimal("2")

    @property
    def adverse_bps(self) -> Decimal:
        return self.spread_bps / 2 + self.slippage_bps


def _adverse(price: Decimal, side: str, bps: Decimal) -> Decimal:
    factor = bps / TEN_K
    buying = side in ("buy", "buy_to_cover")
    out = price * (1 + factor) if buying else price * (1 - factor)
    return out.quantize(CENT, rounding=ROUND_HALF_UP)


def fill_price(
    *,
    side: str,
    order_type: str,
    bar: BarPrices,
    costs: FillCosts,
    price: Decimal | None = None,
    stop: Decimal | None = None,
) -> Decimal | None:
    """The price this order fills at on `bar`, or None if it does not fill on it."""
    buying = side in ("buy", "buy_to_cover")
    if order_type == "market":
        return _adverse(bar.open, side, costs.adverse_bps)
    if order_type == "limit":
        if price is None:
            return None
        if buying and bar.low <= price:
            return min(bar.open, price).quantize(CENT, rounding=ROUND_HALF_UP)
        if not buying and bar.high >= price:
            return max(bar.open, price).quantize(CENT, rounding=ROUND_HALF_UP)
        return None
    if order_type == "stop":
        if stop is None:
            return None
        if buying and bar.high >= stop:
            return _adverse(max(bar.open, stop), side, costs.adverse_bps)
        if not buying and bar.low <= stop:
            return _adverse(min(bar.open, stop), side, costs.adverse_bps)
        return None
    if order_type == "stop_limit":
        if stop is None or price is None:
            return None
        triggered = bar.high >= stop if buying else bar.low <= stop
        if not triggered:
            return None
        reached = bar.low <= price if buying else bar.high >= price
        return price.quantize(CENT, rounding=ROUND_HALF_UP) if reached else None
    return None


ORDER_PRIORITY = {"market": 0, "stop": 1, "stop_limit": 2, "limit": 3}


def pegged_entry_limit(mid: Decimal, side: str, offset_bps: Decimal) -> Decimal:
    """The pegged entry limit: mid minus the offset for buys, plus for sells."""
    factor = offset_bps / TEN_K
    value = mid * (1 - factor) if side == "buy" else mid * (1 + factor)
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
