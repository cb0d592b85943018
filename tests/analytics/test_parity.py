"""Parity: a paper session recorded through the live pipeline (replay feed → stored bar →
bar-close event → strategies → risk → paper broker → exit manager), backtested from its stored
bars, gives the same signals and the same trades."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.backtest.config import BacktestConfig
from analytics.backtest.runner import DataSpec, backtest_run
from marketdata.replay import replay_bars, synthetic_sessions
from strategies.models import Signal
from trading.models import Fill, Trade


def _spy_2011_sessions(count: int):
    """The first `count` trading days of the shared SPY file, pre/post-market bars included."""
    from itertools import groupby

    from marketdata.replay import read_bars_csv
    from tests.conftest import shared_file

    bars = list(read_bars_csv(shared_file("data/SPY_1m_2011-01.csv"), symbol="SPY"))
    days = [list(g) for _, g in groupby(bars, key=lambda b: b.ts.date())]
    return [b for day in days[:count] for b in day]


POLICIES = (
    Path(__file__).resolve().parent.parent / "fixtures" / "analytics" / "session_policies.yaml"
)


@pytest.fixture(
    params=[("synthetic", 3, "0", ""), ("synthetic", 1, "0", ""), ("spy2011", 3, "0", ""),
            ("spy2011", 3, "150", ""), ("spy2011", 3, "0", str(POLICIES))],
    ids=["synthetic-max3", "synthetic-max1", "spy2011-max3", "spy2011-killswitch",
         "spy2011-policies"],
)  # fmt: skip
def recorded_session(request, db, settings, tmp_path):
    source, max_concurrent, daily_loss, policy_file = request.param
    settings.EVENTS_JOURNAL = tmp_path / "events.jsonl"
    settings.SESSION_POLICY_FILE = policy_file
    settings.RISK_MAX_CONCURRENT = max_concurrent  # 1: many signals are risk-blocked
    settings.RISK_MAX_DAILY_LOSS_USD = Decimal(daily_loss)  # 150: the kill switch fires
    settings.RISK_MAX_DAILY_LOSS_R = Decimal("0")  # the USD limit above is the only one
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from strategies.feature_store import engines_reset

    engines_reset()
    if source == "synthetic":
        bars = synthetic_sessions(symbol="SPY", sessions=2, seed=21, end=date(2024, 5, 10))
    else:  # real prints: pre/post-market bars, gaps, thin minutes
        bars = _spy_2011_sessions(3)  # HOD_FAIL is an event now: 3 days give enough trades
    stats = replay_bars(bars, speed=0)
    assert stats.published == len(bars) and stats.skipped == 0
    return bars


def _recorded_trades():
    out = []
    for trade in Trade.objects.filter(status="closed").order_by("created_at", "id"):
        fills = Fill.objects.filter(order__trade=trade).order_by("ts", "id")
        exits = [(f.ts, f.qty, Decimal(f.price)) for f in fills if f.side == "sell"]
        out.append(
            (
                trade.setup,
                trade.signal.bar_ts,
                trade.opened_at,
                trade.entry_price.quantize(Decimal("0.0001")),
                trade.qty,
                exits,
                trade.exit_reason,
                trade.realized_pnl.quantize(Decimal("0.01")),
            )
        )
    return out


def _backtest_trades(result):
    out = []
    for t in sorted(result.closed_trades(), key=lambda t: (t.signal_ts, t.setup)):
        out.append(
            (
                t.setup,
                t.signal_ts,
                t.entry_ts,
                Decimal(str(t.entry_price)).quantize(Decimal("0.0001")),
                t.qty,
                [
                    (leg.ts, leg.qty, Decimal(str(leg.price)).quantize(Decimal("0.01")))
                    for leg in t.legs
                ],  # fmt: skip
                t.exit_reason,
                Decimal(str(round(t.pnl, 2))),
            )
        )
    return out


@pytest.mark.slow
def test_backtest_of_a_recorded_paper_session_matches_it(recorded_session):
    recorded_signals = sorted(
        (s.setup, s.bar_ts, s.outcome) for s in Signal.objects.filter(symbol="SPY")
    )
    assert len(recorded_signals) > 5
    recorded = sorted(_recorded_trades(), key=lambda r: (r[1], r[0]))
    assert len(recorded) > 3
    for mode in ("event", "fast"):
        result = backtest_run(
            spec=DataSpec("db", ("SPY",)), config=BacktestConfig.from_settings(), mode=mode
        )
        backtested_signals = sorted((s.setup, s.bar_ts, s.outcome) for s in result.signals)
        assert backtested_signals == recorded_signals, mode
        assert _backtest_trades(result) == recorded, mode
    config = BacktestConfig.from_settings()
    if config.risk.max_concurrent == 1:
        assert any(outcome == "risk_blocked" for _, _, outcome in recorded_signals)
    if config.policy_book is not None:
        assert any(outcome == "policy_blocked" for _, _, outcome in recorded_signals)
        assert any(outcome == "dry_run" for _, _, outcome in recorded_signals)
    if config.risk.max_daily_loss_usd > 0:
        from risk.models import TradingState

        # the limit binds: entries whose risk at the stop would pass it are refused up front
        # (DAILY_LOSS_LIMIT), and the kill switch halts once the realised loss reaches it
        state = TradingState.objects.first()
        halted = state is not None and state.state == "HALTED"
        reasons = [s.reasons for s in Signal.objects.all()]
        assert halted or any("DAILY_LOSS_LIMIT" in r for r in reasons)
        if halted:
            assert any(r[6] == "kill_switch" for r in recorded) or any(
                "TRADING_HALTED" in r for r in reasons
            )
