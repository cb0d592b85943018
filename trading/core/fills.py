"""Fill rules: pure functions of an order and a bar, shared by the paper broker (live/replay
paper trading) and every backtest (no database, no clock).

Prices and fees come from the symbol's cost model (`risk.costs.CostModel`: the settings, then
the symbol's override), the same model sizing uses:
- market: the bar's open, as `CostModel.market_fill` (half the spread plus the slippage against
  the trader, rounded to the tick: buys up, sells down);
- limit: when the bar trades through the limit: at the open if it gapped past it, else at the
  limit (no slippage: a resting limit is price-protected);
- stop: when the bar crosses the stop: at the open if it gapped through it, else at the stop,
  then priced by `market_fill` (a triggered stop is a market order);
- stop_limit: triggered like a stop, then fills at its limit only if the bar reached it.
Within one bar, when several exits of the same position could fill, stops are taken before
limits (the conservative order); market orders fill first, at the open.

The pegged entry limit lives ENTRY_LIMIT_TIMEOUT_SEC, then goes to market (as live). On a bar
the limit is alive for only part of (`entry_limit_span`): the only price known at an instant
inside a bar is its open, so the limit fills only if the open is at or through it; otherwise
it becomes a market order at that bar's open. A limit alive for the whole bar (a timeout of a
minute or more) may fill anywhere in it.

Each fill's fees: `CostModel.fill_fee` (commission per share, per order on an order's first
fill, regulatory fees on sales, each rounded up to the cent).

Options of the model (`FillCosts`): `worst_case` (a limit needs the bar to trade THROUGH it, a
triggered stop fills at the bar's extreme) and `volume_cap_pct` (an order fills at most that
fraction of the bar's volume: the rest stays working, a partial fill).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from risk.costs import CostModel
from trading.core.types import CENT, ZERO

TEN_K = Decimal(10000)
BAR = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class BarPrices:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal | None = None

    @classmethod
    def of(cls, bar) -> BarPrices:
        prices = (Decimal(str(getattr(bar, k))) for k in ("open", "high", "low", "close"))
        volume = getattr(bar, "volume", None)
        return cls(*prices, volume=None if volume is None else Decimal(str(volume)))


@dataclass(frozen=True, slots=True)
class FillCosts:
    """The fill model: the cost model of the symbol being filled (`model`) and the options."""

    model: CostModel = field(default_factory=CostModel)
    worst_case: bool = False
    volume_cap_pct: Decimal = ZERO  # 0: no cap; 0.1: at most 10% of the bar's volume

    def for_model(self, model: CostModel | None) -> FillCosts:
        """The same options with another symbol's cost model (None keeps this one)."""
        if model is None or model == self.model:
            return self
        return replace(self, model=model)

    def fee(self, side: str, qty: int, price: Decimal, *, first_fill: bool) -> Decimal:
        """The fees of one fill of `qty` shares at `price` (`CostModel.fill_fee`)."""
        return self.model.fill_fee(side, qty, price, first_fill=first_fill)


def entry_limit_span(
    bar: BarPrices, *, created_at: datetime, bar_start: datetime, timeout: timedelta
) -> BarPrices:
    """The part of `bar` a pegged entry limit is alive for: the whole bar when its timeout
    runs past the bar's end, else only the bar's open (the one price known at the instant
    it is alive: a 2-second limit on a 1-minute bar)."""
    if created_at + timeout >= bar_start + BAR:
        return bar
    o = bar.open
    return BarPrices(o, o, o, o, volume=bar.volume)


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
        return costs.model.market_fill(side, bar.open)
    if order_type == "limit":
        if price is None:
            return None
        if costs.worst_case:
            reached = bar.low < price if buying else bar.high > price
        else:
            reached = bar.low <= price if buying else bar.high >= price
        if not reached:
            return None
        best = min(bar.open, price) if buying else max(bar.open, price)
        return best.quantize(CENT, rounding=ROUND_HALF_UP)
    if order_type == "stop":
        if stop is None:
            return None
        if buying and bar.high >= stop:
            base = bar.high if costs.worst_case else max(bar.open, stop)
            return costs.model.market_fill(side, base)
        if not buying and bar.low <= stop:
            base = bar.low if costs.worst_case else min(bar.open, stop)
            return costs.model.market_fill(side, base)
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


def fill_qty(open_qty: int, bar: BarPrices, costs: FillCosts, *, already: int = 0) -> int:
    """How much of `open_qty` fills on `bar`: all of it, or what the volume cap (a share of
    the bar's volume per order) leaves after the `already` filled on this bar."""
    if costs.volume_cap_pct <= 0 or bar.volume is None:
        return open_qty
    cap = int((bar.volume * costs.volume_cap_pct).to_integral_value(ROUND_FLOOR))
    return max(0, min(open_qty, cap - already))


ORDER_PRIORITY = {"market": 0, "stop": 1, "stop_limit": 2, "limit": 3}


def bar_fills(
    orders,
    bar: BarPrices,
    costs: FillCosts,
    filled_on_bar: dict | None = None,
    span=None,
) -> list[tuple[object, int, Decimal]]:
    """(order, qty, price) of each of `orders` (working and eligible on `bar`) that fills on
    it, in the conservative intrabar order (market, stop, stop-limit, limit; then by id).
    `filled_on_bar` (order pk -> qty) is what each order already filled on this bar;
    `span(order)` the part of the bar an order is alive for (None: the whole bar)."""
    filled_on_bar = filled_on_bar or {}
    out = []
    ranked = sorted(orders, key=lambda o: (ORDER_PRIORITY.get(o.order_type, 9), o.pk))
    for order in ranked:
        open_qty = order.qty - order.filled_qty
        if open_qty <= 0:
            continue
        price = fill_price(
            side=order.side,
            order_type=order.order_type,
            bar=bar if span is None else span(order),
            costs=costs,
            price=order.price,
            stop=order.stop_price,
        )
        if price is None:
            continue
        qty = fill_qty(open_qty, bar, costs, already=filled_on_bar.get(order.pk, 0))
        if qty > 0:
            out.append((order, qty, price))
    return out


def pegged_entry_limit(mid: Decimal, side: str, offset_bps: Decimal) -> Decimal:
    """The pegged entry limit: mid minus the offset for buys, plus for sells."""
    factor = offset_bps / TEN_K
    value = mid * (1 - factor) if side == "buy" else mid * (1 + factor)
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
