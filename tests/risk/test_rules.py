"""The pure risk rules: every check reported, each with its stable code."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

import pytest

from risk.config import RiskConfig, SymbolParams
from risk.rules import CODES, evaluate
from risk.types import Exposure, Intent

D = Decimal
OPEN_NOON = datetime(2025, 9, 17, 16, 0, tzinfo=UTC)  # Wed 12:00 EDT
INTENT = Intent(symbol="SPY", entry_price=D("450"), stop_price=D("449"))


def failed(decision):
    return set(decision.reasons)


def test_a_clean_intent_is_approved_with_every_check_reported():
    decision = evaluate(INTENT, Exposure(cash=D("100000")), RiskConfig(), OPEN_NOON)
    assert decision.approved
    assert decision.qty == 100  # floor(100 / 1.00)
    codes = {c.code for c in decision.checks}
    assert {
        "TRADING_HALTED",
        "MARKET_CLOSED",
        "WINDOW_CLOSED",
        "MAX_CONCURRENT",
        "QTY_ZERO",
    } <= codes
    assert codes <= set(CODES)


def test_several_failures_are_all_returned_at_once():
    exposure = Exposure(open_trades=3, open_orders=5, trading_state="HALTED")
    config = RiskConfig(blacklist=frozenset({"SPY"}))
    decision = evaluate(INTENT, exposure, config, OPEN_NOON)
    assert not decision.approved
    assert {"TRADING_HALTED", "MAX_CONCURRENT", "MAX_OPEN_ORDERS", "SYMBOL_BLACKLISTED"} <= failed(
        decision
    )


def test_reducing_blocks_entries():
    decision = evaluate(INTENT, Exposure(trading_state="REDUCING"), RiskConfig(), OPEN_NOON)
    assert failed(decision) == {"TRADING_REDUCING"}


@pytest.mark.parametrize(
    ("hh", "mm", "code"),
    [
        (13, 29, "MARKET_CLOSED"),
        (13, 30, "WINDOW_CLOSED"),
        (13, 31, None),
        (19, 55, None),
        (19, 56, "WINDOW_CLOSED"),
        (20, 0, "MARKET_CLOSED"),
    ],
)
def test_trading_window_in_new_york_time(hh, mm, code):
    now = datetime(2025, 9, 17, hh, mm, tzinfo=UTC)  # EDT: 13:30Z = 09:30
    decision = evaluate(INTENT, Exposure(), RiskConfig(), now)
    if code is None:
        assert decision.approved, decision.reasons
    else:
        assert code in failed(decision)


def test_window_follows_winter_time():
    now = datetime(2025, 1, 15, 14, 31, tzinfo=UTC)  # EST: 09:31
    assert evaluate(INTENT, Exposure(), RiskConfig(), now).approved
    early = datetime(2025, 1, 15, 13, 31, tzinfo=UTC)  # 08:31 EST
    assert "MARKET_CLOSED" in failed(evaluate(INTENT, Exposure(), RiskConfig(), early))


def test_exchange_holiday_is_blocked():
    thanksgiving = datetime(2025, 11, 27, 16, 0, tzinfo=UTC)
    decision = evaluate(INTENT, Exposure(), RiskConfig(), thanksgiving)
    assert failed(decision) == {"MARKET_HOLIDAY"}
    assert "holiday" in next(c.message for c in decision.checks if c.code == "MARKET_HOLIDAY")


def test_weekend_is_blocked():
    saturday = datetime(2025, 9, 20, 16, 0, tzinfo=UTC)
    assert "MARKET_HOLIDAY" in failed(evaluate(INTENT, Exposure(), RiskConfig(), saturday))


def test_early_close_day_ends_the_window_before_13_00():
    # 2025-11-28 (day after Thanksgiving) closes at 13:00 EST = 18:00Z.
    ok = datetime(2025, 11, 28, 17, 50, tzinfo=UTC)  # 12:50
    late = datetime(2025, 11, 28, 17, 56, tzinfo=UTC)  # 12:56 > 12:55
    closed = datetime(2025, 11, 28, 18, 30, tzinfo=UTC)  # 13:30: market closed
    assert evaluate(INTENT, Exposure(), RiskConfig(), ok).approved
    assert failed(evaluate(INTENT, Exposure(), RiskConfig(), late)) == {"WINDOW_CLOSED"}
    assert {"MARKET_CLOSED", "WINDOW_CLOSED"} <= failed(
        evaluate(INTENT, Exposure(), RiskConfig(), closed)
    )


def test_session_policy_window_replaces_the_global_window():
    intent = Intent(
        symbol="SPY", entry_price=D("450"), stop_price=D("449"), policy_window=(time(10), time(11))
    )
    assert "WINDOW_CLOSED" in failed(evaluate(intent, Exposure(), RiskConfig(), OPEN_NOON))
    at_1030 = datetime(2025, 9, 17, 14, 30, tzinfo=UTC)
    assert evaluate(intent, Exposure(), RiskConfig(), at_1030).approved


def test_whitelist_blacklist_and_disabled_symbol():
    config = RiskConfig(whitelist=frozenset({"QQQ"}))
    assert "SYMBOL_NOT_WHITELISTED" in failed(evaluate(INTENT, Exposure(), config, OPEN_NOON))
    params = SymbolParams(symbol="SPY", enabled=False)
    decision = evaluate(INTENT, Exposure(), RiskConfig(), OPEN_NOON, params)
    assert failed(decision) == {"SYMBOL_DISABLED"}


def test_concurrency_limits_count_open_trades_orders_and_per_symbol():
    config = RiskConfig(max_concurrent=2, max_open_orders=2, max_positions_per_symbol=1)
    exposure = Exposure(open_trades=1, open_orders=1, trades_by_symbol={"SPY": 1})
    assert failed(evaluate(INTENT, exposure, config, OPEN_NOON)) == {"MAX_POSITIONS_PER_SYMBOL"}
    exposure = Exposure(open_trades=2, open_orders=2, trades_by_symbol={})
    assert failed(evaluate(INTENT, exposure, config, OPEN_NOON)) == {
        "MAX_CONCURRENT",
        "MAX_OPEN_ORDERS",
    }


def test_per_symbol_limit_zero_means_no_limit():
    exposure = Exposure(trades_by_symbol={"SPY": 2})
    assert evaluate(INTENT, exposure, RiskConfig(max_concurrent=5), OPEN_NOON).approved


def test_requested_qty_over_the_notional_cap_is_blocked_not_shrunk():
    intent = Intent(symbol="SPY", entry_price=D("450"), qty=30)
    config = RiskConfig(max_order_notional_usd=D("10000"))
    decision = evaluate(intent, Exposure(), config, OPEN_NOON)
    assert failed(decision) == {"NOTIONAL_EXCEEDS_MAX"}
    assert decision.qty == 30


def test_risk_based_size_is_capped_by_notional_and_buying_power():
    config = RiskConfig(max_order_notional_usd=D("9000"))
    decision = evaluate(INTENT, Exposure(), config, OPEN_NOON)
    assert decision.approved and decision.qty == 20  # 9000 / 450
    decision = evaluate(INTENT, Exposure(buying_power=D("4500")), RiskConfig(), OPEN_NOON)
    assert decision.approved and decision.qty == 10


def test_per_symbol_notional_cap_counts_what_is_held():
    params = SymbolParams(symbol="SPY", qty=10, max_notional_usd=D("6000"))
    exposure = Exposure(notional_by_symbol={"SPY": D("2000")})
    decision = evaluate(INTENT, exposure, RiskConfig(), OPEN_NOON, params)
    assert "NOTIONAL_EXCEEDS_SYMBOL_MAX" in failed(decision)  # 2000 + 4500 > 6000


def test_min_cash_is_kept_after_paying_for_the_order():
    config = RiskConfig(min_cash_usd=D("5000"))
    # 100 shares (risk-sized: 100 / 1.00) cost 45,000; 50,000 leaves exactly the 5,000 floor
    assert evaluate(INTENT, Exposure(cash=D("50000")), config, OPEN_NOON).qty == 100
    # 49,999.99: sizing keeps the floor by buying one share less
    assert evaluate(INTENT, Exposure(cash=D("49999.99")), config, OPEN_NOON).qty == 99
    # below the floor nothing fits
    assert failed(evaluate(INTENT, Exposure(cash=D("4999")), config, OPEN_NOON)) == {
        "INSUFFICIENT_CASH",
        "QTY_ZERO",
    }
    assert "INSUFFICIENT_CASH" in failed(evaluate(INTENT, Exposure(), config, OPEN_NOON))


def test_daily_loss_limit_counts_the_new_trade_at_its_stop():
    config = RiskConfig(max_daily_loss_usd=D("500"))
    # the new trade risks 100 (100 shares x 1.00): -400 - 100 reaches the limit exactly
    assert evaluate(INTENT, Exposure(day_pnl=D("-400")), config, OPEN_NOON).approved
    assert failed(evaluate(INTENT, Exposure(day_pnl=D("-400.01")), config, OPEN_NOON)) == {
        "DAILY_LOSS_LIMIT"
    }
    assert failed(evaluate(INTENT, Exposure(day_pnl=D("-500")), config, OPEN_NOON)) == {
        "DAILY_LOSS_LIMIT"
    }


def test_stop_above_entry_and_tiny_budget_give_qty_zero():
    bad = Intent(symbol="SPY", entry_price=D("450"), stop_price=D("451"))
    assert {"STOP_INVALID", "QTY_ZERO"} <= failed(
        evaluate(bad, Exposure(), RiskConfig(), OPEN_NOON)
    )
    wide = Intent(symbol="SPY", entry_price=D("450"), stop_price=D("300"))
    decision = evaluate(wide, Exposure(), RiskConfig(), OPEN_NOON)
    assert failed(decision) == {"QTY_ZERO"} and decision.qty == 0


def test_fixed_qty_override_wins_over_risk_sizing():
    params = SymbolParams(symbol="SPY", qty=7)
    assert evaluate(INTENT, Exposure(), RiskConfig(), OPEN_NOON, params).qty == 7
