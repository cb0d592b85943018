"""Backtests simulate what live paper trading does beyond plain entries: OTOCO brackets
(STOP_PCT + TP_PCT), commissions, and partial fills of any leg (the volume-capped fill model).
A paper session recorded through the live pipeline with such a configuration is backtested in
event and fast mode from its stored bars: same signals, same fills, same P&L net of fees."""

from datetime import date
from decimal import ROUND_CEILING, Decimal

import pytest

from analytics.backtest.config import BacktestConfig
from analytics.backtest.runner import DataSpec, backtest_run
from marketdata.replay import replay_bars, synthetic_sessions
from strategies.models import Signal
from tests.analytics.test_parity import _backtest_trades, _recorded_trades, _spy_2011_sessions
from trading.models import Fill, Order, Trade

FOUR = Decimal("0.0001")


def _up(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_CEILING)


def _recorded_exact():
    """The parity suite's recorded trades with the P&L to 4 places (partial fills give
    averages of several prices, so the exact P&L can end in a half cent: no rounding here)."""
    by_key = {
        (t.setup, t.signal.bar_ts): t.realized_pnl.quantize(FOUR)
        for t in Trade.objects.filter(status="closed")
    }
    return [(*r[:-1], by_key[(r[0], r[1])]) for r in _recorded_trades()]


def _backtest_exact(result):
    pnl = {(t.setup, t.signal_ts): Decimal(str(t.pnl)).quantize(FOUR) for t in result.trades}
    return [(*r[:-1], pnl[(r[0], r[1])]) for r in _backtest_trades(result)]


# (bars, STOP_PCT, TP_PCT, commission per share, per order, volume cap)
CASES = {
    "synthetic-bracket-fees": ("synthetic", "0.002", "0.003", "0.005", "1.00", "0"),
    "spy2011-bracket-fees-volume-cap": ("spy2011", "0.001", "0.0015", "0.005", "1.00", "0.002"),
    "spy2011-plain-volume-cap": ("spy2011", "", "", "0", "0", "0.0005"),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def recorded(request, db, settings, tmp_path):
    source, stop_pct, tp_pct, per_share, per_order, cap = CASES[request.param]
    settings.EVENTS_JOURNAL = tmp_path / "events.jsonl"
    settings.SESSION_POLICY_FILE = ""
    settings.RISK_MAX_CONCURRENT = 3
    settings.STOP_PCT = float(stop_pct) if stop_pct else None
    settings.TP_PCT = float(tp_pct) if tp_pct else None
    settings.PAPER_COMMISSION_PER_SHARE_USD = Decimal(per_share)
    settings.PAPER_COMMISSION_PER_ORDER_USD = Decimal(per_order)
    settings.PAPER_FILL_VOLUME_CAP_PCT = Decimal(cap)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from strategies.feature_store import engines_reset
    from trading.brokers import broker_override
    from trading.brokers.paper import PaperBroker

    engines_reset()
    broker_override(PaperBroker())  # reads the fill model of this case
    if source == "synthetic":
        bars = synthetic_sessions(symbol="SPY", sessions=2, seed=21, end=date(2024, 5, 10))
    else:
        bars = _spy_2011_sessions(2)
    stats = replay_bars(bars, speed=0)
    assert stats.published == len(bars)
    yield request.param
    broker_override(None)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # three recorded sessions and six backtests
def test_backtest_of_a_bracket_fee_partial_fill_session_matches_it(recorded):
    source, stop_pct, _, per_share, per_order, cap = CASES[recorded]
    recorded_signals = sorted(
        (s.setup, s.bar_ts, s.outcome) for s in Signal.objects.filter(symbol="SPY")
    )
    trades = sorted(_recorded_exact(), key=lambda r: (r[1], r[0]))
    assert len(trades) >= 3
    # the configuration really was exercised by the recorded session
    if stop_pct:
        assert Order.objects.filter(order_class="otoco", role="entry").exists()
        assert {r[6] for r in trades} & {"stop", "target_two"}  # a bracket leg closed a trade
    if Decimal(per_share) or Decimal(per_order):
        fees = Fill.objects.filter(order__trade__status="closed")
        for fill in fees[:20]:
            # fee = per share x qty (+ per order on an order's first fill), rounded up to the
            # cent, + on a sale the SEC fee (27.80 per million) and the FINRA TAF (0.000166 a
            # share), each rounded up to the cent (risk.costs defaults)
            first = fill.order.fills.order_by("ts", "id").first().pk == fill.pk
            commission = Decimal(per_share) * fill.qty + (Decimal(per_order) if first else 0)
            expected = _up(commission)
            if fill.side == "sell":
                expected += _up(fill.price * fill.qty * Decimal("27.80") / 1_000_000)
                expected += _up(min(Decimal("0.000166") * fill.qty, Decimal("8.30")))
            assert fill.fee == expected
    if (Decimal(per_share) or Decimal(per_order)) and not Decimal(cap):
        closed = Trade.objects.filter(status="closed").first()
        gross = sum(
            (f.price - closed.entry_price) * f.qty
            for f in Fill.objects.filter(order__trade=closed, side="sell")
        )
        paid = sum(f.fee for f in Fill.objects.filter(order__trade=closed))
        assert paid > 0 and closed.realized_pnl == gross - paid
    if Decimal(cap):
        partial = [
            o for o in Order.objects.filter(fills__isnull=False).distinct() if o.fills.count() > 1
        ]
        assert partial, "the volume cap should split some order over several bars"
    for mode in ("event", "fast"):
        result = backtest_run(
            spec=DataSpec("db", ("SPY",)), config=BacktestConfig.from_settings(), mode=mode
        )
        if mode == "fast":  # the kernel does not cover these: the core runs them
            assert result.params["engine"] == "ledger"
        assert sorted((s.setup, s.bar_ts, s.outcome) for s in result.signals) == recorded_signals
        assert _backtest_exact(result) == trades, mode
