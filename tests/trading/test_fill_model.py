"""The pure paper fill rules the broker and the backtester share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from risk.costs import CostModel
from trading.core.fills import (
    BarPrices,
    FillCosts,
    entry_limit_span,
    fill_price,
    pegged_entry_limit,
)

D = Decimal
BAR = BarPrices(open=D("100"), high=D("101"), low=D("99"), close=D("100.5"))
COSTS = FillCosts(model=CostModel(slippage_bps=D("1"), spread_bps=D("2")))  # 2 bps adverse


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


T0 = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)  # the bar's start; the limit was placed then


def test_a_two_second_entry_limit_sees_only_the_bars_open():
    # placed at the bar's start, alive 2 s of the 60 s bar: the open is the one price it saw
    span = entry_limit_span(BAR, created_at=T0, bar_start=T0, timeout=timedelta(seconds=2))
    assert (span.open, span.high, span.low, span.close) == (D("100"),) * 4
    # a 99.50 buy limit: the bar's low (99) reached it, but not within its 2 seconds
    assert (
        fill_price(side="buy", order_type="limit", bar=span, costs=COSTS, price=D("99.5")) is None
    )
    # a limit at or above the open fills at the open
    assert fill_price(
        side="buy", order_type="limit", bar=span, costs=COSTS, price=D("100.00")
    ) == D("100.00")


def test_an_entry_limit_alive_for_the_whole_bar_may_fill_anywhere_in_it():
    span = entry_limit_span(BAR, created_at=T0, bar_start=T0, timeout=timedelta(seconds=60))
    assert span == BAR
    assert fill_price(side="buy", order_type="limit", bar=span, costs=COSTS, price=D("99.5")) == D(
        "99.50"
    )


def test_market_fills_follow_the_usd_cost_model_rounded_against_the_trader():
    # SPY defaults: 1 cent spread (half each side) + 0.5 cent slippage = 1 cent per side
    spy = FillCosts(model=CostModel(spread_usd=D("0.01"), slippage_usd=D("0.005")))
    bar = BarPrices(open=D("127.30"), high=D("127.40"), low=D("127.20"), close=D("127.35"))
    assert fill_price(side="buy", order_type="market", bar=bar, costs=spy) == D("127.31")
    assert fill_price(side="sell", order_type="market", bar=bar, costs=spy) == D("127.29")
    # a triggered stop at 127.25: 127.25 - 0.01
    assert fill_price(side="sell", order_type="stop", bar=bar, costs=spy, stop=D("127.25")) == D(
        "127.24"
    )


def test_fill_fees_charge_commissions_and_sale_fees_rounded_up_to_the_cent():
    model = CostModel(
        commission_per_share_usd=D("0.005"),
        commission_per_order_usd=D("1"),
        sec_fee_per_million=D("27.80"),
        taf_per_share_usd=D("0.000166"),
        taf_max_usd=D("8.30"),
    )
    costs = FillCosts(model=model)
    # buy 33 at 100: 33 x 0.005 = 0.165 -> 0.17, + 1.00 on the order's first fill
    assert costs.fee("buy", 33, D("100"), first_fill=True) == D("1.17")
    assert costs.fee("buy", 33, D("100"), first_fill=False) == D("0.17")
    # sell 33 at 100: 0.17 commission + SEC 3300 x 27.80 / 1e6 = 0.09174 -> 0.10
    # + TAF 33 x 0.000166 = 0.005478 -> 0.01
    assert costs.fee("sell", 33, D("100"), first_fill=False) == D("0.28")
