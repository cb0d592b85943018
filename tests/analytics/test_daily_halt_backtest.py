"""A multi-day backtest does not stop trading after its first bad day: the daily loss limit
(default RISK_MAX_DAILY_LOSS_R = 3 x RISK_PER_TRADE_USD 100 = 300 USD) halts and flattens on
day 1, the halt lifts at day 2's open (09:30 New York), and day 2 trades again; the result
records both state changes, the same in the event and the fast mode."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from analytics.backtest.config import BacktestConfig
from analytics.backtest.event import run_event
from analytics.backtest.fast import run_fast
from analytics.bars import bars_frame_from_data
from marketdata.replay import synthetic_sessions

NY = ZoneInfo("America/New_York")
END = date(2024, 5, 10)  # three synthetic sessions: Wed 05-08, Thu 05-09, Fri 05-10
DAY1, DAY2 = date(2024, 5, 8), date(2024, 5, 9)
DAY2_OPEN = datetime(2024, 5, 9, 13, 30, tzinfo=UTC)  # 09:30 EDT
GAP_USD = 10.0
BAR = timedelta(minutes=1)


def _gapped_day_one():
    """The synthetic sessions, with day 1 gapping GAP_USD down one bar after the entry of a
    trade that was still open then: its stop fills at the gapped open (a ~10 USD/share loss
    on ~56 shares, far past the 300 USD limit)."""
    bars = synthetic_sessions(symbol="SPY", sessions=3, seed=21, end=END)
    config = BacktestConfig.from_settings()
    assert config.risk.max_daily_loss_usd == Decimal("300")
    plain = run_event({"SPY": bars_frame_from_data(bars)}, config, symbols=["SPY"])
    victim = next(
        t for t in plain.closed_trades()
        if t.session_date() == DAY1 and t.legs[0].ts >= t.entry_ts + 2 * BAR
    )  # fmt: skip
    gap_from = victim.entry_ts + BAR

    def shifted(b):
        if b.ts >= gap_from and b.ts.astimezone(NY).date() == DAY1:
            return replace(b, open=b.open - GAP_USD, high=b.high - GAP_USD,
                           low=b.low - GAP_USD, close=b.close - GAP_USD)  # fmt: skip
        return b

    gapped = [shifted(b) for b in bars]
    gap_bar = next(b for b in gapped if b.ts == gap_from)
    return gapped, victim, gap_bar, config


def test_a_daily_loss_halt_on_day_one_lifts_at_day_twos_open_in_both_modes():
    bars, victim, gap_bar, config = _gapped_day_one()
    frames = {"SPY": bars_frame_from_data(bars)}
    event = run_event(frames, config, symbols=["SPY"])
    fast = run_fast(frames, config, symbols=["SPY"])
    core = run_fast(frames, config, symbols=["SPY"], engine="ledger")
    assert fast.params["engine"] == "kernel"  # the kernel runs the kill switch (defaults)
    same = (victim.setup, victim.signal_ts)
    hit = next(t for t in event.trades if (t.setup, t.signal_ts) == same)
    # the stop gapped: filled at the gap bar's open minus half the 1-cent spread and the
    # half-cent slippage, rounded down to the cent
    expected = (Decimal(str(gap_bar.open)) - Decimal("0.01")).quantize(
        Decimal("0.01"), rounding=ROUND_FLOOR
    )
    assert hit.legs[-1].ts == gap_bar.ts and Decimal(str(hit.legs[-1].price)) == expected
    assert hit.exit_reason == "stop"
    # the loss: qty x (entry - fill) >= 56 x 10 USD, past the 300 USD limit
    assert hit.pnl <= -300
    halted_at = gap_bar.ts + BAR  # decided at the gap bar's close
    for result in (event, fast, core):
        changes = [(c.at, c.from_state, c.to_state) for c in result.state_changes]
        assert changes == [
            (halted_at, "ACTIVE", "HALTED"),
            (DAY2_OPEN, "HALTED", "ACTIVE"),
        ], result.mode
        assert result.as_dict()["state_changes"][1]["at"] == DAY2_OPEN.isoformat()
    # halted: every signal decided between the halt and the lift is refused TRADING_HALTED
    # (decided at bar_ts + 1 minute); nothing entered in that span
    in_halt = [s for s in event.signals if halted_at <= s.bar_ts + BAR < DAY2_OPEN]
    assert in_halt and all("TRADING_HALTED" in s.reasons for s in in_halt)
    assert not [t for t in event.trades if halted_at <= t.entry_ts < DAY2_OPEN]
    # day 2 trades again
    day2 = [t for t in event.closed_trades() if t.entry_ts.astimezone(NY).date() == DAY2]
    assert day2
    assert not any("TRADING_HALTED" in s.reasons for s in event.signals if s.bar_ts >= DAY2_OPEN)
    assert [t.key() for t in fast.closed_trades()] == [t.key() for t in event.closed_trades()]
    assert [s.key() for s in fast.signals] == [s.key() for s in event.signals]
    # the kernel and the core over the memory ledger: the same trades, fees, net P&L, reasons
    # and state changes (reasons included)
    assert [(t.key(), t.fees, t.pnl) for t in fast.closed_trades()] == [
        (t.key(), t.fees, t.pnl) for t in core.closed_trades()
    ]
    assert [(s.key(), s.reasons, s.qty) for s in fast.signals] == [
        (s.key(), s.reasons, s.qty) for s in core.signals
    ]
    assert [c.as_dict() for c in fast.state_changes] == [c.as_dict() for c in core.state_changes]
