"""Pegged entry prices that can fill: from the live quote, at or inside the spread.

The prototype priced entries at mid - 2 bp, below the bid on a one-cent spread: such a limit
never fills and became a market order later. Here a buy is priced from the bid side and never
outside [bid, ask] (a sell mirrors it):
- `join`:  the bid (queue behind the best buyers; fills when sellers come down);
- `mid`:   the midpoint rounded toward our side (on a 1-cent spread: the bid);
- `cross`: the bid + `cents`, capped at the ask (pay up into the spread; `cents` >= the spread
  makes it marketable).
Returns None without a two-sided quote (the caller falls back to its market rule).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from trading.brokers.base import Quote

MODES = ("join", "mid", "cross")
CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")


def _tick(price: Decimal) -> Decimal:
    return CENT if price >= 1 else SUB_PENNY


def peg_price(
    quote: Quote | None, *, side: str, mode: str, cents: Decimal = Decimal("0")
) -> Decimal | None:
    """The pegged limit for `side` (buy/buy_to_cover or sell/sell_short) under `mode`."""
    if mode not in MODES:
        raise ValueError(f"peg mode {mode!r} not one of {MODES}")
    if quote is None or not quote.bid or not quote.ask or quote.bid <= 0 or quote.ask < quote.bid:
        return None
    bid, ask = Decimal(quote.bid), Decimal(quote.ask)
    buying = side in ("buy", "buy_to_cover")
    if mode == "join":
        price = bid if buying else ask
    elif mode == "mid":
        mid = (bid + ask) / 2
        price = mid.quantize(_tick(mid), rounding=ROUND_FLOOR if buying else ROUND_CEILING)
    else:
        step = Decimal(cents) / 100
        price = min(ask, bid + step) if buying else max(bid, ask - step)
    # on the tick and never outside the spread
    price = price.quantize(_tick(price), rounding=ROUND_FLOOR if buying else ROUND_CEILING)
    return min(max(price, bid), ask)


def price_improvement(side: str, fill_price: Decimal, quote_at_decision: Quote) -> Decimal | None:
    """What a fill saved against a market order at the decision's quote (per share; > 0 is
    better): ask - fill for a buy, fill - bid for a sell."""
    if not quote_at_decision.bid or not quote_at_decision.ask:
        return None
    if side in ("buy", "buy_to_cover"):
        return Decimal(quote_at_decision.ask) - Decimal(fill_price)
    return Decimal(fill_price) - Decimal(quote_at_decision.bid)
