"""A signal through risk, the paper broker and the exit manager, bar by bar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from risk.config import RiskConfig
from risk.models import SymbolOverride
from tests.trading.helpers import bar, make_signal, minutes
from trading.exits import exits_manage
from trading.models import Fill, Order, OrderStatus, Position, Trade
from trading.pipeline import paper_bar_process, signal_handle

pytestmark = pytest.mark.django_db
D = Decimal
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)  # 10:00 EDT, bar start of the signal bar


def step(b, config):
    """What the pipeline does for a bar, minus the strategy engine."""
    paper_bar_process(bar=b, config=config)
    exits_manage(now=b.ts + timedelta(minutes=1), symbol=b.symbol, bar=b, config=config)


def open_trade(paper, config, **signal_kwargs):
    signal = make_signal(bar_ts=T, **signal_kwargs)
    outcome = signal_handle(signal=signal, now=minutes(T, 1), config=config)
    assert outcome == "dry_run", signal.reasons
    trade = Trade.objects.get(signal=signal)
    # next bar: the entry fills at the open (pegged limit 99.98 not touched → market)
    step(bar(minutes(T, 1), "100.10", "100.20", "100.00", "100.10"), config)
    trade.refresh_from_db()
    return signal, trade


def working(trade, role):
    return Order.objects.filter(
        trade=trade, role=role, status__in=["submitted", "open", "partially_filled"]
    )


def test_entry_fills_next_bar_and_is_protected_by_a_stop(paper, config):
    signal, trade = open_trade(paper, config)
    signal.refresh_from_db()
    assert signal.outcome == "dry_run" and signal.qty == 100
    entry = Order.objects.get(trade=trade, role="entry")
    assert entry.tag == signal.tag and entry.status == "filled"
    assert entry.order_type == "market"  # the pegged limit timed out and was modified to market
    assert "modified to market" in " ".join(entry.events.values_list("cause", flat=True))
    assert trade.status == "open" and trade.remaining_qty == 100
    # 100.10 + 2 bps = 100.12002, rounded up to the cent against the buyer (risk.costs)
    assert trade.entry_price == D("100.13")
    # the levels move with the fill: stop 99.00 planned from 100.00 -> 99.13 from 100.13
    assert (trade.stop_price, trade.target_one, trade.target_two) == (
        D("99.13"),
        D("101.13"),
        D("102.13"),
    )
    stop = working(trade, "stop").get()
    assert stop.qty == 100 and stop.stop_price == D("99.13") and stop.order_type == "stop"
    assert Position.objects.get(symbol="SPY").qty == 100


def test_pegged_limit_fills_when_the_next_open_is_below_it(paper, config):
    signal = make_signal(bar_ts=T)
    signal_handle(signal=signal, now=minutes(T, 1), config=config)
    entry = Order.objects.get(signal=signal, role="entry")
    assert entry.order_type == "limit" and entry.price == D("99.98")
    step(bar(minutes(T, 1), "99.90", "100.20", "99.80", "100.10"), config)
    entry.refresh_from_db()
    assert entry.status == "filled" and entry.avg_fill_price == D("99.90")


def test_pegged_limit_reached_only_later_in_the_bar_goes_to_market_at_the_open(paper, config):
    # the limit lives ENTRY_LIMIT_TIMEOUT_SEC (2 s) of the bar: it saw the open (100.10), not
    # the low (99.90) that came later, so it is modified to market and fills at the open
    signal = make_signal(bar_ts=T)
    signal_handle(signal=signal, now=minutes(T, 1), config=config)
    entry = Order.objects.get(signal=signal, role="entry")
    assert entry.order_type == "limit" and entry.price == D("99.98")
    step(bar(minutes(T, 1), "100.10", "100.20", "99.90", "100.10"), config)
    entry.refresh_from_db()
    assert entry.status == "filled" and entry.order_type == "market"
    assert entry.avg_fill_price == D("100.13")  # 100.10 + 2 bps, rounded up


def test_stop_exit_closes_the_trade_and_the_ledger_matches_the_fills(paper, config):
    _, trade = open_trade(paper, config)
    step(bar(minutes(T, 2), "99.50", "99.60", "98.80", "99.00"), config)
    trade.refresh_from_db()
    assert trade.status == "closed" and trade.exit_reason == "stop"
    stop_fill = Fill.objects.get(order__role="stop")
    # the re-anchored stop 99.13 - 2 bps = 99.110174, rounded down against the seller
    assert stop_fill.price == D("99.11")
    assert trade.realized_pnl == (D("99.11") - D("100.13")) * 100
    position = Position.objects.get(symbol="SPY")
    assert position.qty == 0 and position.realized_pnl == trade.realized_pnl
    assert not Order.objects.filter(status__in=["new", "submitted", "open"]).exists()


def test_target_one_sells_half_moves_stop_to_break_even_then_target_two(paper, config):
    _, trade = open_trade(paper, config)
    step(bar(minutes(T, 2), "100.50", "101.20", "100.40", "101.00"), config)  # T1 101.13 touched
    trade.refresh_from_db()
    assert trade.partial_done and trade.stop_price == trade.entry_price
    exit_order = working(trade, "exit").get()
    assert exit_order.qty == 50
    stop = working(trade, "stop").get()
    assert stop.qty == 50 and stop.stop_price == D("100.13")
    step(bar(minutes(T, 3), "101.00", "101.20", "100.90", "101.10"), config)  # partial fills
    trade.refresh_from_db()
    assert trade.remaining_qty == 50 and trade.status == "open"
    step(bar(minutes(T, 4), "101.50", "102.20", "101.40", "102.00"), config)  # T2 102.13 touched
    step(bar(minutes(T, 5), "102.00", "102.20", "101.90", "102.10"), config)  # exit fills
    trade.refresh_from_db()
    assert trade.status == "closed" and trade.exit_reason == "target_two"
    sells = Fill.objects.filter(side="sell")
    assert sum(f.qty for f in sells) == 100
    pnl = sum((f.price - trade.entry_price) * f.qty for f in sells)
    assert trade.realized_pnl == pnl


def test_a_position_is_never_exited_twice(paper, config):
    _, trade = open_trade(paper, config)
    now = minutes(T, 60)  # past the 45-minute timeout
    exits_manage(now=now, symbol="SPY", config=config)
    exits_manage(now=now, symbol="SPY", config=config)
    assert Order.objects.filter(trade=trade, role="exit").count() == 1
    assert not working(trade, "stop").exists()  # stop cancelled before the market exit
    step(bar(now, "100.00", "100.10", "99.90", "100.00"), config)
    trade.refresh_from_db()
    assert trade.status == "closed" and trade.exit_reason == "timeout"
    assert sum(Fill.objects.filter(side="sell").values_list("qty", flat=True)) == 100


def test_time_stop_from_the_session_policy(paper, config):
    _, trade = open_trade(paper, config, features={"exec_atr": 1.0, "time_stop_sec": 120})
    assert trade.deadline == minutes(T, 3)
    exits_manage(now=minutes(T, 3), symbol="SPY", config=config)
    assert working(trade, "exit").exists()


def test_flat_before_the_close(paper, config):
    _, trade = open_trade(paper, config, features={"exec_atr": 1.0, "time_stop_sec": 99999})
    close_day = datetime(2025, 9, 17, 19, 55, tzinfo=UTC)  # 15:55 EDT = close - 5 min
    exits_manage(now=close_day, symbol="SPY", config=config)
    trade.refresh_from_db()
    assert trade.exit_reason == "session_close"


def test_trailing_stop_raises_the_broker_stop_and_keeps_the_high_water(paper, config):
    SymbolOverride.objects.create(symbol="SPY", trail_pct=D("0.01"), trail_act_pct=D("0.005"))
    _, trade = open_trade(paper, config, t1=None, t2=None)
    assert trade.trail_pct == D("0.0100")
    step(bar(minutes(T, 2), "100.20", "100.40", "100.10", "100.30"), config)  # below activation
    trade.refresh_from_db()
    assert not trade.trail_active and trade.trail_high == D("100.40")
    step(bar(minutes(T, 3), "100.50", "101.50", "100.40", "101.40"), config)
    trade.refresh_from_db()
    assert trade.trail_active and trade.trail_high == D("101.50")
    stop = working(trade, "stop").get()
    assert stop.stop_price == D("100.49")  # 101.50 * 0.99
    assert "stop moved" in " ".join(stop.events.values_list("cause", flat=True))
    step(bar(minutes(T, 4), "101.00", "101.10", "100.40", "100.60"), config)  # stop hit
    trade.refresh_from_db()
    assert trade.status == "closed" and trade.exit_reason == "stop"


def test_otoco_bracket_when_stop_pct_and_tp_pct_are_set(paper, config):
    SymbolOverride.objects.create(symbol="SPY", stop_pct=D("0.01"), tp_pct=D("0.02"))
    signal, trade = open_trade(paper, config)
    entry = Order.objects.get(trade=trade, role="entry")
    assert entry.order_class == "otoco" and len(entry.legs) == 3
    tp = Order.objects.get(trade=trade, role="target_two")
    stop = Order.objects.get(trade=trade, role="stop")
    assert tp.parent == entry and stop.parent == entry
    assert (tp.price, stop.stop_price) == (D("102.00"), D("99.00"))
    assert tp.status == "open" and stop.status == "open"
    assert trade.qty == 100  # sized on the bracket stop: 100 / (100 - 99)
    step(bar(minutes(T, 2), "101.50", "102.50", "101.40", "102.30"), config)
    trade.refresh_from_db()
    stop.refresh_from_db()
    assert trade.status == "closed" and trade.exit_reason == "target_two"
    assert stop.status == "cancelled"  # one cancels the other


def test_risk_block_is_recorded_on_the_signal(paper, config):
    config = RiskConfig(max_concurrent=0)
    signal = make_signal(bar_ts=T)
    assert signal_handle(signal=signal, now=minutes(T, 1), config=config) == "risk_blocked"
    signal.refresh_from_db()
    assert "MAX_CONCURRENT" in signal.reasons
    assert not Order.objects.exists()


def test_concurrency_limit_counts_pending_trades(paper, config):
    config = RiskConfig(max_concurrent=1)
    first = make_signal(bar_ts=T)
    second = make_signal(bar_ts=T, setup="VWAP_RECLAIM")
    assert signal_handle(signal=first, now=minutes(T, 1), config=config) == "dry_run"
    assert signal_handle(signal=second, now=minutes(T, 1), config=config) == "risk_blocked"
    assert OrderStatus.NEW not in Order.objects.values_list("status", flat=True)


def test_trailing_moves_the_stop_leg_of_a_bracket(paper, config):
    SymbolOverride.objects.create(
        symbol="SPY", stop_pct=D("0.01"), tp_pct=D("0.05"), trail_pct=D("0.005")
    )
    _, trade = open_trade(paper, config)
    stop = Order.objects.get(trade=trade, role="stop")
    # the bracket stop was 99.00; trailing (active at once) raised it on the entry bar
    assert stop.parent_id and stop.stop_price == D("99.70")  # 100.20 * 0.995
    step(bar(minutes(T, 2), "100.50", "101.00", "100.40", "100.90"), config)
    stop.refresh_from_db()
    assert stop.stop_price == D("100.50")  # 101.00 * 0.995
    assert stop.status == "open"
