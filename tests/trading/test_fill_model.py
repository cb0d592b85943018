"""The pure paper fill rules the broker and the backtester share."""

from __future__ import annotations

from decimal import Decimal

from trading.core.fills import BarPrices, FillCosts, fill_price, pegged_entry_limit

D = Decimal
BAR = BarPrices(open=D("100"), high=D("101"), low=D("99"), close=D("100.5"))
COSTS = FillCosts(slippage_bps=D("1"), spread_bps=D("2"))  # 2 bps adverse


def test_market_fills_at_open_worse_by_half_spread_plus_slippage():
    assert fill_price(side="buy", order_type="market", bar=BAR, costs=COSTS) == D("100.02")
    assert fill_price(side="sell", order_type="market", bar=BAR, costs=COSTS) == D("99.98")


def test_limit_fills_when_touched_at_the_limit_or_a_better_open():
    assert fill_price(side="buy", order_type="limit", bar=BAR, costs=COSTS, price=D("99.5")) == D(
        "99.50"
    )
    assert fill_price(side="buy", order_type="limit", bar=BAR, costs=COSTS, price=D("100.5")) == D(
        "100.00"
    )
    assert (
        fill_price(side="buy", order_type="limit", bar=BAR, costs=COSTS, price=D("98.99")) is None
    )
    assert fill_price(side="sell", order_type="limit", bar=BAR, costs=COSTS, price=D("101")) == D(
        "101.00"
    )
    assert (
        fill_price(side="sell", order_type="limit", bar=BAR, costs=COSTS, price=D("101.01")) is None
    )


def test_sell_stop_fills_when_crossed_and_gaps_fill_at_the_open():
    assert fill_price(side="sell", order_type="stop", bar=BAR, costs=COSTS, stop=D("99.5")) == D(
        "99.48"
    )
    assert fill_price(side="sell", order_type="stop", bar=BAR, costs=COSTS, stop=D("98.9")) is None
    gap = BarPrices(open=D("97"), high=D("97.5"), low=D("96"), close=D("97"))
    assert fill_price(side="sell", order_type="stop", bar=gap, costs=COSTS, stop=D("99")) == D(
        "96.98"
    )


def test_stop_limit_needs_the_trigger_and_the_limit():
    assert fill_price(
        side="sell", order_type="stop_limit", bar=BAR, costs=COSTS, stop=D("99.5"), price=D("99.4")
    ) == D("99.40")
    gap = BarPrices(open=D("97"), high=D("97.5"), low=D("96"), close=D("97"))
    assert (
        fill_price(
            side="sell", order_type="stop_limit", bar=gap, costs=COSTS, stop=D("99"), price=D("98")
        )
        is None
    )


def test_pegged_entry_limit_is_below_mid_for_buys():
    assert pegged_entry_limit(D("100"), "buy", D("2")) == D("99.98")
    assert pegged_entry_limit(D("100"), "sell", D("2")) == D("100.02")
