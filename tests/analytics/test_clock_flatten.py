"""The clock, not the next bar, flattens: a feed that stops in the afternoon with a position
open ends the day flat in paper (a replay through the live pipeline) and in both backtest
modes. The session-close rule (FLATTEN_BEFORE_CLOSE_MIN = 5: flat at 15:55 New York) places
the exit at 15:55; with no bar of the symbol after the feed stopped, the paper fill model fills
that market sell two minutes later (15:57: the minute's bar gets a minute of grace) at the last
close, worse by half the spread and the
slippage of the cost model (defaults: 0.005 + 0.005 USD), rounded down to the cent."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

import pytest

from analytics.backtest.config import BacktestConfig
from analytics.backtest.event import run_event
from analytics.backtest.fast import run_fast
from analytics.bars import bars_frame_from_data
from marketdata.replay import synthetic_sessions

NY = ZoneInfo("America/New_York")
END = date(2024, 5, 10)  # a Friday; two synthetic sessions end there
FEED_STOPS = time(15, 49)  # New York: the last bar of the last day starts at 15:48
NO_TIME_STOP = {"TRADE_TIMEOUT_MIN": 600}  # the session close, not a time stop, must act


def _bars_open_at_the_stop():
    """Synthetic sessions whose last day is cut at 15:49, and the trade of the full data that
    is open then (entry before, exit after 15:49): the cut data leaves it open."""
    bars = synthetic_sessions(symbol="SPY", sessions=3, seed=21, end=END)
    stop_at = datetime.combine(END, FEED_STOPS, NY)
    config = BacktestConfig.from_settings(overrides=NO_TIME_STOP)
    full = run_event({"SPY": bars_frame_from_data(bars)}, config, symbols=["SPY"])
    open_then = [
        t for t in full.closed_trades() if t.entry_ts < stop_at and t.legs[-1].ts >= stop_at
    ]
    cut = [b for b in bars if b.ts < stop_at]
    return cut, open_then, config


def _last_close(cut) -> Decimal:
    return Decimal(str(cut[-1].close))


def _flat_fill(last_close: Decimal) -> Decimal:
    return (last_close - Decimal("0.01")).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)


def test_a_feed_that_stops_at_15_49_ends_the_day_flat_in_both_backtest_modes():
    cut, open_then, config = _bars_open_at_the_stop()
    assert open_then, "the synthetic day must have a trade open at 15:49"
    frames = {"SPY": bars_frame_from_data(cut)}
    flat_at = datetime.combine(END, time(15, 57), NY)
    results = {
        "event": run_event(frames, config, symbols=["SPY"]),
        "fast": run_fast(frames, config, symbols=["SPY"]),
    }
    for mode, result in results.items():
        by_signal = {(t.setup, t.signal_ts): t for t in result.trades}
        for was_open in open_then:  # the same entries, now closed on the clock that day
            trade = by_signal[(was_open.setup, was_open.signal_ts)]
            assert (trade.entry_ts, trade.entry_price) == (was_open.entry_ts, was_open.entry_price)
            assert trade.closed_at is not None, mode
            assert trade.exit_reason == "session_close", mode
            leg = trade.legs[-1]
            assert leg.ts == flat_at, mode
            assert Decimal(str(leg.price)) == _flat_fill(_last_close(cut)), mode
        assert sum(t.qty for t in result.trades) == sum(
            leg.qty for t in result.trades for leg in t.legs
        ), f"{mode}: every share bought was sold"
    event, fast = results["event"], results["fast"]
    assert [t.key() for t in fast.closed_trades()] == [t.key() for t in event.closed_trades()]


def test_the_fast_kernel_declines_data_with_missing_session_minutes():
    from tests.analytics.test_backtest import KERNEL_COVERED

    cut, _, _ = _bars_open_at_the_stop()
    config = BacktestConfig.from_settings(overrides={**KERNEL_COVERED, **NO_TIME_STOP})
    result = run_fast({"SPY": bars_frame_from_data(cut)}, config, symbols=["SPY"])
    assert result.params["engine"] == "ledger"
    assert "no bar at 2024-05-10T19:49:00+00:00" in result.params["engine_reason"]


@pytest.mark.django_db(transaction=True)
def test_a_paper_session_whose_feed_stops_at_15_49_ends_the_day_flat(settings, tmp_path):
    from marketdata.replay import replay_bars
    from marketdata.services import bars_upsert
    from strategies.feature_store import engines_reset
    from trading.models import Fill, Position, Trade

    settings.EVENTS_JOURNAL = tmp_path / "events.jsonl"
    settings.TRADE_TIMEOUT_MIN = NO_TIME_STOP["TRADE_TIMEOUT_MIN"]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    engines_reset()
    cut, _, _ = _bars_open_at_the_stop()
    # a restart at 14:30: what came before is stored history (the engine warms up from it),
    # the last 79 minutes go through the live path, the feed stopping at 15:49
    restart = datetime.combine(END, time(14, 30), NY)
    bars_upsert(bars=[b for b in cut if b.ts < restart])
    replay_bars([b for b in cut if b.ts >= restart], speed=0)
    stop_at = datetime.combine(END, FEED_STOPS, NY)
    assert not Trade.objects.filter(status__in=("pending", "open")).exists()
    held = [
        t for t in Trade.objects.filter(opened_at__lt=stop_at)
        if Fill.objects.filter(order__trade=t, side="sell", ts__gte=stop_at).exists()
    ]  # fmt: skip
    assert held, "a trade must be open when the feed stops"
    for trade in held:
        assert trade.status == "closed" and trade.exit_reason == "session_close"
        last = Fill.objects.filter(order__trade=trade, side="sell").order_by("ts", "id").last()
        assert last.ts == datetime.combine(END, time(15, 57), NY)
        assert last.price == _flat_fill(_last_close(cut))
    assert all(p.qty == 0 for p in Position.objects.all())
