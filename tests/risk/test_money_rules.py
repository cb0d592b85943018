"""Money safety in the pure rules: entries in flight reserve cash and notional, caps are
fractions of equity, one idea per setup and execution symbol, a stop floor, T1 must clear the
costs, sizing includes the costs, levels follow the fill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from risk.config import RiskConfig
from risk.costs import CostModel
from risk.exposure import (
    IdeaRow,
    LiveTrade,
    WorkingEntry,
    entry_worst_price,
    ideas_in_window,
    money_exposure,
    open_risk,
    pending_totals,
)
from risk.rules import CODES, evaluate
from risk.sizing import (
    levels_reanchor,
    min_stop_distance,
    partial_exit_qty,
    position_size,
    stopout_loss,
)
from risk.types import Exposure, Intent

D = Decimal
NOON = datetime(2025, 9, 17, 16, 0, tzinfo=UTC)  # Wed 12:00 EDT
SPY = CostModel(
    spread_usd=D("0.01"),
    slippage_usd=D("0.005"),
    sec_fee_per_million=D("27.80"),
    taf_per_share_usd=D("0.000166"),
    taf_max_usd=D("8.30"),
)
SAFE = RiskConfig(
    costs=SPY,
    max_order_notional_pct=D("0.25"),
    max_symbol_exposure_pct=D("0.5"),
    max_gross_exposure_pct=D("1.0"),
    duplicate_exposure=True,
    max_concurrent=10,
    max_open_orders=10,
)
WIDE = Intent(symbol="SPY", entry_price=D("100"), stop_price=D("95"), setup="ORB")


def failed(decision):
    return set(decision.reasons)


def test_new_codes_are_registered():
    assert {
        "GROSS_EXPOSURE_EXCEEDS_MAX",
        "DUPLICATE_EXPOSURE",
        "TARGET_BELOW_COSTS",
        "MIN_STOP_DISTANCE",
    } <= set(CODES)


# --- cash and exposure counted with entries in flight ----------------------------------------
def test_pending_entries_reserve_cash_so_a_second_same_bar_entry_is_sized_on_what_is_left():
    # 100k cash, a working entry reserving 90k: 10k is left, the 5-dollar stop would allow 19
    # shares (100 / 5.02...), the remaining cash buys floor(10,000 / 100.01) = 99 -> 19 by risk
    exposure = Exposure(cash=D("100000"), pending_cash=D("90000"))
    decision = evaluate(WIDE, exposure, RiskConfig(costs=SPY), NOON)
    assert decision.approved and decision.qty == 19
    # 99,500 reserved: 500 left buys 4 shares at 100.01
    tight = Exposure(cash=D("100000"), pending_cash=D("99500"))
    assert evaluate(WIDE, tight, RiskConfig(costs=SPY), NOON).qty == 4
    # everything reserved: nothing fits, and the size says why
    full = Exposure(cash=D("100000"), pending_cash=D("100000"))
    decision = evaluate(WIDE, full, RiskConfig(costs=SPY), NOON)
    assert failed(decision) == {"QTY_ZERO"}
    assert "buying power 0.00" in next(c.message for c in decision.checks if c.code == "QTY_ZERO")
    # a MIN_CASH_USD floor makes the cash rule fail too
    floor = RiskConfig(costs=SPY, min_cash_usd=D("1000"))
    assert failed(evaluate(WIDE, full, floor, NOON)) == {"QTY_ZERO", "INSUFFICIENT_CASH"}


def test_a_fixed_quantity_beyond_the_cash_left_is_blocked_not_resized():
    intent = Intent(symbol="SPY", entry_price=D("100"), stop_price=D("95"), qty=60)
    exposure = Exposure(cash=D("10000"), pending_cash=D("5000"))
    # 60 x 100.01 = 6,000.60 > 5,000 left
    assert "INSUFFICIENT_CASH" in failed(evaluate(intent, exposure, RiskConfig(costs=SPY), NOON))


def test_buying_power_above_cash_is_not_borrowed():
    exposure = Exposure(cash=D("1000"), buying_power=D("4000"))
    assert exposure.spendable == D("1000")


def test_order_cap_is_a_fraction_of_equity():
    # equity 100k -> order cap 25k: 249 shares at 100.01 (the risk budget alone: 578)
    intent = Intent(symbol="SPY", entry_price=D("100"), stop_price=D("99.85"), setup="ORB")
    decision = evaluate(intent, Exposure(cash=D("100000")), SAFE, NOON)
    assert decision.approved and decision.qty == 249
    assert decision.notional <= D("25000")


def test_symbol_cap_counts_positions_plus_pending_in_that_symbol():
    # cap 50k in SPY; 30k held + 15k pending leaves 5k: floor(5,000 / 100.01) = 49 shares
    exposure = Exposure(
        cash=D("70000"),
        equity=D("100000"),
        notional_by_symbol={"SPY": D("30000")},
        pending_notional_by_symbol={"SPY": D("15000")},
        pending_cash=D("15000"),
    )
    decision = evaluate(WIDE, exposure, SAFE, NOON)
    assert decision.qty == 19  # the risk budget is tighter than the 49 the cap leaves
    tiny = Exposure(
        cash=D("70000"),
        equity=D("100000"),
        notional_by_symbol={"SPY": D("30000")},
        pending_notional_by_symbol={"SPY": D("19900")},
        pending_cash=D("19900"),
    )
    # 100 left: one share at 100.01 does not fit
    assert "QTY_ZERO" in failed(evaluate(WIDE, tiny, SAFE, NOON))


def test_a_fixed_quantity_over_the_symbol_cap_is_blocked():
    intent = Intent(symbol="SPY", entry_price=D("100"), stop_price=D("95"), qty=100)
    exposure = Exposure(
        cash=D("100000"), equity=D("100000"), notional_by_symbol={"SPY": D("45000")}
    )
    # 45,000 + 10,001 > 50,000
    assert "NOTIONAL_EXCEEDS_SYMBOL_MAX" in failed(evaluate(intent, exposure, SAFE, NOON))


def test_gross_cap_counts_every_symbol_and_every_pending_entry():
    intent = Intent(symbol="QQQ", entry_price=D("100"), stop_price=D("95"), qty=20)
    exposure = Exposure(
        cash=D("30000"),
        equity=D("100000"),
        notional_by_symbol={"SPY": D("50000"), "IWM": D("20000")},
        pending_cash=D("29000"),
    )
    # 99,000 + 20 x 100.01 > 100,000
    assert "GROSS_EXPOSURE_EXCEEDS_MAX" in failed(evaluate(intent, exposure, SAFE, NOON))


def test_fraction_caps_block_when_equity_is_unknown():
    assert "GROSS_EXPOSURE_EXCEEDS_MAX" in failed(evaluate(WIDE, Exposure(), SAFE, NOON))


# --- one idea --------------------------------------------------------------------------------
def test_an_index_signal_and_its_proxy_signal_are_one_idea():
    # SPX executes in SPY: a SPY trade of the same setup decided this minute blocks it
    ideas = ideas_in_window(
        [IdeaRow("ORB", "SPY", NOON, live=True)], now=NOON, window_sec=SAFE.idea_window_sec
    )
    spx = Intent(
        symbol="SPY", entry_price=D("100"), stop_price=D("95"), setup="ORB", signal_symbol="SPX"
    )
    exposure = Exposure(cash=D("100000"), ideas=ideas)
    assert failed(evaluate(spx, exposure, SAFE, NOON)) == {"DUPLICATE_EXPOSURE"}
    # another setup in SPY is another idea
    other = Intent(symbol="SPY", entry_price=D("100"), stop_price=D("95"), setup="EMA_CROSS")
    assert evaluate(other, exposure, SAFE, NOON).approved
    # switched off: allowed
    assert evaluate(spx, exposure, SAFE.with_(duplicate_exposure=False), NOON).approved


def test_a_finished_idea_blocks_only_within_the_window():
    rows = [IdeaRow("ORB", "SPY", NOON - timedelta(seconds=301), live=False)]
    assert ideas_in_window(rows, now=NOON, window_sec=300) == ()
    rows = [IdeaRow("ORB", "SPY", NOON - timedelta(seconds=300), live=False)]
    assert len(ideas_in_window(rows, now=NOON, window_sec=300)) == 1
    # a live trade blocks however old
    rows = [IdeaRow("ORB", "SPY", NOON - timedelta(hours=3), live=True)]
    assert len(ideas_in_window(rows, now=NOON, window_sec=300)) == 1


def test_a_finished_idea_decided_after_now_does_not_block():
    # the window is [now - 300 s, now]: a trade decided 1 s after now (a later run of a replay
    # over the same day) is outside it; one decided exactly at now is inside
    rows = [IdeaRow("ORB", "SPY", NOON + timedelta(seconds=1), live=False)]
    assert ideas_in_window(rows, now=NOON, window_sec=300) == ()
    rows = [IdeaRow("ORB", "SPY", NOON, live=False)]
    assert len(ideas_in_window(rows, now=NOON, window_sec=300)) == 1


# --- pending reservation helpers -------------------------------------------------------------
def test_a_pending_limit_reserves_the_larger_of_its_limit_and_the_market_fallback():
    limit = WorkingEntry("SPY", 100, D("99.98"), D("100"))
    # the limit goes to market after the timeout: 100 + 0.01 is the worst case
    assert entry_worst_price(limit, SPY) == D("100.01")
    high = WorkingEntry("SPY", 100, D("100.05"), D("100"))
    assert entry_worst_price(high, SPY) == D("100.05")
    by_symbol, cash = pending_totals(
        [limit, WorkingEntry("QQQ", 10, None, D("50")), WorkingEntry("SPY", 0, None, D("1"))],
        lambda s: SPY,
    )
    assert by_symbol == {"SPY": D("10001.00"), "QQQ": D("500.10")}
    assert cash == D("10501.10")


def test_open_risk_sums_each_live_trade_at_its_stop():
    trades = [
        LiveTrade("SPY", 100, D("100.01"), D("99")),  # 100 x (100.01 - 98.99) + fees
        LiveTrade("QQQ", 10, D("50"), None),  # no stop: all of it
    ]
    expected = stopout_loss(qty=100, fill=D("100.01"), stop=D("99"), costs=SPY) + D("500")
    assert open_risk(trades, lambda s: SPY) == expected
    assert expected > D("102") + D("500")


def test_daily_loss_counts_live_trades_at_their_stops():
    config = RiskConfig(costs=SPY, max_daily_loss_usd=D("300"))
    # nothing realised, but 250 already at risk in live trades: a 100 risk would exceed 300
    exposure = Exposure(cash=D("100000"), open_risk=D("250"))
    assert "DAILY_LOSS_LIMIT" in failed(evaluate(WIDE, exposure, config, NOON))
    assert evaluate(WIDE, Exposure(cash=D("100000"), open_risk=D("150")), config, NOON).approved


def test_daily_loss_in_r_is_the_tighter_limit():
    config = RiskConfig(max_daily_loss_usd=D("1000"), max_daily_loss_r=D("3"))
    assert config.daily_loss_limit_usd == D("300")
    assert RiskConfig(max_daily_loss_r=D("2")).daily_loss_limit_usd == D("200")
    assert RiskConfig().daily_loss_limit_usd == 0


# --- stop floor and T1 -----------------------------------------------------------------------
def test_min_stop_distance_is_the_largest_of_atr_ticks_and_spreads():
    kw = dict(costs=SPY, k_atr=D("1"), n_ticks=5, m_spreads=D("3"))
    assert min_stop_distance(atr=D("0.03"), **kw) == D("0.05")  # 5 ticks
    assert min_stop_distance(atr=D("0.08"), **kw) == D("0.08")  # 1 ATR
    assert min_stop_distance(atr=None, **{**kw, "n_ticks": 1}) == D("0.03")  # 3 spreads


def test_a_two_cent_stop_is_widened_to_the_floor_and_sized_on_it():
    config = RiskConfig(costs=SPY, min_stop_ticks=5, min_stop_atr=D("1"))
    intent = Intent(symbol="SPY", entry_price=D("130"), stop_price=D("129.98"), atr=D("0.02"))
    decision = evaluate(intent, Exposure(cash=D("1000000")), config, NOON)
    assert decision.approved
    assert decision.stop_price == D("129.95")
    widened = [c for c in decision.checks if c.code == "MIN_STOP_DISTANCE"]
    assert widened and widened[0].passed
    # fill 130.01, the stop sells at 129.94: 0.07 a share plus fees -> at most 100 lost
    assert decision.risk_at_stop <= D("100")
    # floor(100 / (0.07 + 0.003612 + 0.000166)) = 1,355, which loses 94.85 + SEC 4.90 + TAF
    # 0.23 = 99.98
    assert decision.qty == 1355


def test_t1_that_does_not_clear_twice_the_round_trip_is_blocked():
    config = RiskConfig(costs=SPY, min_t1_cost_multiple=D("2"))
    # round trip at 130: 0.01 + 0.01 + 0.003614 + 0.000166 = 0.02378; x2 = 0.04756
    low = Intent(symbol="SPY", entry_price=D("130"), stop_price=D("129.9"), target_one=D("130.04"))
    assert failed(evaluate(low, Exposure(cash=D("1000000")), config, NOON)) == {
        "TARGET_BELOW_COSTS"
    }
    ok = Intent(symbol="SPY", entry_price=D("130"), stop_price=D("129.9"), target_one=D("130.05"))
    assert evaluate(ok, Exposure(cash=D("1000000")), config, NOON).approved


# --- sizing with costs -----------------------------------------------------------------------
prices = st.decimals(min_value="5", max_value="2000", places=2)


@settings(max_examples=300, deadline=None)
@given(
    entry=prices,
    ticks=st.integers(min_value=1, max_value=500),
    risk=st.decimals(min_value="10", max_value="5000", places=2),
    spread=st.sampled_from([D("0.01"), D("0.02"), D("0.05")]),
    slippage=st.sampled_from([D("0"), D("0.005"), D("0.01")]),
    per_order=st.sampled_from([D("0"), D("1")]),
)
def test_a_stop_out_without_a_gap_never_loses_more_than_the_budget(
    entry, ticks, risk, spread, slippage, per_order
):
    """Sized at the expected fill, the stop filled like a market sell, fees rounded as
    charged: the realised loss of a plain stop-out is within the budget, and one share
    more would not be."""
    costs = SPY.with_(spread_usd=spread, slippage_usd=slippage, commission_per_order_usd=per_order)
    stop = entry - ticks * D("0.01")
    if stop <= 0:
        return
    sized = position_size(entry=entry, stop=stop, risk_usd=risk, costs=costs)
    fill = costs.market_fill("buy", entry)
    if sized.qty:
        assert sized.fill == fill
        # the realised loss, worked out from the fills and the charges one by one
        exit_price = costs.market_fill("sell", stop)
        loss = sized.qty * (fill - exit_price)
        loss += costs.fees("buy", sized.qty, fill) + costs.fees("sell", sized.qty, exit_price)
        assert loss <= risk * (1 + RiskConfig().slippage_allowance)
        assert loss <= risk
        more = sized.qty + 1
        if more * costs.taf_per_share_usd > costs.taf_max_usd:
            return  # past the TAF cap sizing is conservative by design: not the maximum
        more_loss = more * (fill - exit_price)
        more_loss += costs.fees("buy", more, fill) + costs.fees("sell", more, exit_price)
        assert more_loss > risk


# --- levels on the fill, partial exits -------------------------------------------------------
def test_levels_follow_the_fill():
    levels = levels_reanchor(
        reference=D("100"),
        fill=D("100.07"),
        stop=D("99.50"),
        target_one=D("100.05"),
        target_two=D("100.40"),
    )
    assert levels.stop == D("99.57") and levels.target_one == D("100.12")
    assert levels.target_two == D("100.47")
    # a fill above the planned T1 now has T1 above the fill
    assert levels.target_one > D("100.07")


def test_reanchored_stop_rounds_up_to_the_tick():
    levels = levels_reanchor(
        reference=D("100.005"), fill=D("100.01"), stop=D("99.50"), target_one=None, target_two=None
    )
    assert levels.stop == D("99.51")  # 99.505 -> up: never a larger loss than planned


def test_partial_exit_of_one_means_all_of_it():
    assert partial_exit_qty(7, D("1.0")) == 7
    assert partial_exit_qty(7, D("0.5")) == 3
    assert partial_exit_qty(2, D("0.99")) == 1  # below 1 keeps a share for T2
    assert partial_exit_qty(1, D("0.5")) == 0
    assert partial_exit_qty(5, D("0")) == 0


def test_money_exposure_builds_every_field_from_ledger_rows():
    fields = money_exposure(
        now=NOON,
        working_entries=[WorkingEntry("SPY", 10, None, D("100"))],
        idea_rows=[IdeaRow("ORB", "spy", NOON, live=True)],
        live_trades=[LiveTrade("SPY", 10, D("100.01"), D("99"))],
        window_sec=300,
        costs_for=lambda s: SPY,
    )
    assert fields["pending_cash"] == D("1000.10")
    assert fields["pending_notional_by_symbol"] == {"SPY": D("1000.10")}
    assert fields["ideas"] == (("ORB", "SPY", NOON),)
    # 10 x (100.01 - 98.99) + SEC 0.03 (10 x 98.99 x 27.80e-6 = 0.0275) + TAF 0.01
    assert fields["open_risk"] == D("10.24")
    assert Exposure(cash=D("5000"), **fields).spendable == D("3999.90")
