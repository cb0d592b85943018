"""Parity: a paper session recorded through the live pipeline (replay feed → stored bar →
bar-close event → strategies → risk → paper broker → exit manager), backtested from its stored
bars, gives the same signals and the same trades."""

import os
from datetime import date, timedelta
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


FULL = pytest.mark.skipif(
    os.environ.get("FAULTS_FULL") != "1", reason="full size: FAULTS_FULL=1 (about a minute)"
)


@pytest.fixture(
    params=[("synthetic", 3, "0", "", 2), ("synthetic", 1, "0", "", 2), ("spy2011", 3, "0", "", 2),
            ("spy2011", 3, "100", "", 2), ("spy2011", 3, "0", str(POLICIES), 2),
            ("synthetic", 3, "0", "", 0),
            pytest.param(("spy2011", 3, "0", "", 0), marks=FULL)],
    ids=["synthetic-max3", "synthetic-max1", "spy2011-max3", "spy2011-killswitch",
         "spy2011-policies", "synthetic-limit-at-mid", "spy2011-limit-at-mid"],
)  # fmt: skip
def recorded_session(request, db, settings, tmp_path):
    source, max_concurrent, daily_loss, policy_file, offset_bps = request.param
    # offset 0: the pegged limit sits at the signal's price, so the next open is at or below
    # it about half the time: limit entries fill as limits (at the open), the rest go to market
    settings.ENTRY_LIMIT_OFFSET_BPS = float(offset_bps)
    settings.EVENTS_JOURNAL = tmp_path / "events.jsonl"
    settings.SESSION_POLICY_FILE = policy_file
    settings.RISK_MAX_CONCURRENT = max_concurrent  # 1: many signals are risk-blocked
    settings.RISK_MAX_DAILY_LOSS_USD = Decimal(daily_loss)  # 100: the limit binds
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


def _entry_paths(*, limit_at_mid: bool) -> None:
    """Every entry was a pegged limit. Below the mid (ENTRY_LIMIT_OFFSET_BPS = 2) the next
    bar's open rarely reaches it: such entries were modified to market after
    ENTRY_LIMIT_TIMEOUT_SEC. At the mid (offset 0) the next open is at or below the signal's
    close on most SPY minutes: those filled as limits. A limit fill is never above its limit."""
    from trading.models import Order

    entries = Order.objects.filter(role="entry", status="filled", trade__isnull=False)
    escalated = entries.filter(events__cause__contains="modified to market").distinct()
    as_limits = entries.filter(order_type="limit")
    assert (as_limits if limit_at_mid else escalated).exists()
    for order in as_limits:
        first = order.fills.order_by("ts", "id").first()
        assert first.price <= order.price  # at the open, at or below the limit


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
    _entry_paths(limit_at_mid=config.risk.entry_limit_offset_bps == 0)
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


# --- a live-mode session against the stateful fake broker ----------------------------------
FRICTIONLESS = {
    "COST_SPREAD_USD": Decimal("0"),
    "COST_SLIPPAGE_USD": Decimal("0"),
    "COST_SEC_FEE_PER_MILLION": Decimal("0"),
    "COST_TAF_PER_SHARE_USD": Decimal("0"),
    "COST_TAF_MAX_USD": Decimal("0"),
}


# Non-zero costs of every kind: a 2-cent spread and 1 cent of slippage (a market fill 2 cents
# beyond the print: half the spread + slippage), 0.005 USD a share and 1.00 an order of
# commission, and the settings' SEC fee and FINRA TAF on sales.
COSTS = {
    "COST_SPREAD_USD": Decimal("0.02"),
    "COST_SLIPPAGE_USD": Decimal("0.01"),
    "COST_COMMISSION_PER_SHARE_USD": Decimal("0.005"),
    "COST_COMMISSION_PER_ORDER_USD": Decimal("1.00"),
    "COST_SEC_FEE_PER_MILLION": Decimal("27.80"),
    "COST_TAF_PER_SHARE_USD": Decimal("0.000166"),
    "COST_TAF_MAX_USD": Decimal("8.30"),
}


def _live_broker():
    """The Tradier broker over the stateful fake, its cash following its own fills."""
    from tests.trading.fake_tradier import FakeTradier

    fake = FakeTradier(limits={"trading": 10**9, "standard": 10**9, "market": 10**9})
    fake.cash_start = 100000.0
    fake.match_on_create = False  # an order decided at a close fills on a later print
    return fake, fake.tradier_broker(submit_attempts=4)


def _working_stops(fake, symbol: str) -> list[float]:
    return [
        o["stop_price"]
        for o in fake.orders.values()
        if o["symbol"] == symbol and o["type"] == "stop" and o["status"] not in ("filled",
            "canceled", "expired", "rejected")
    ]  # fmt: skip


def _live_replay(bars, fake) -> None:
    """The live path (DRY_RUN off, the Tradier broker) bar by bar, the fake's tape playing
    each bar as the paper fill model reads it (frictionless: every fill at a print):
    at the bar's start a print at the open (market orders, a pegged limit at or above the
    open); 2 s later the exit manager's beat turns unfilled pegged limits into market orders,
    which fill at the open; then prints at each working stop between the open and the low,
    highest first (the conservative order); a print at the close; then the bar closes and goes
    through the pipeline. Every broker report is read by the beat's order sync."""
    from autotrader_site.clock import MarketClock
    from marketdata.replay import store_and_publish
    from trading.pipeline import exits_tick_run

    second = timedelta(seconds=1)
    for bar in bars:
        start = bar.ts
        MarketClock.set_replay_time(start)
        fake.tick(bar.symbol, bar.open, bar.open, bar.open)
        exits_tick_run(now=start)  # fills at the open; clock rules at the minute
        MarketClock.set_replay_time(start + 2 * second)
        exits_tick_run(now=start + 2 * second)  # ENTRY_LIMIT_TIMEOUT_SEC: limits -> market
        fake.tick(bar.symbol, bar.open, bar.open, bar.open)
        exits_tick_run(now=start + 3 * second)  # their fills, then the protective stops
        for n in range(4):  # a stop fill can re-protect: until nothing new is reached
            levels = sorted(
                {p for p in _working_stops(fake, bar.symbol) if bar.low <= p}, reverse=True
            )
            if not levels:
                break
            for level in levels:
                price = min(level, bar.open)
                fake.tick(bar.symbol, price, price, price)
            exits_tick_run(now=start + (4 + n) * second)
        fake.tick(bar.symbol, bar.close, bar.close, bar.close)
        MarketClock.set_replay_time(start + timedelta(minutes=1))
        store_and_publish(bar)


def _minute(ts):
    return ts.replace(second=0, microsecond=0)


def _recorded_fees() -> list[tuple]:
    """(setup, signal bar, fees booked on the trade's fills) of each closed trade."""
    out = []
    for trade in Trade.objects.filter(status="closed").order_by("created_at", "id"):
        fees = sum((f.fee for f in Fill.objects.filter(order__trade=trade)), Decimal("0"))
        out.append((trade.setup, trade.signal.bar_ts, fees.quantize(Decimal("0.01"))))
    return sorted(out, key=lambda r: (r[1], r[0]))


def _backtest_fees(result) -> list[tuple]:
    return sorted(
        ((t.setup, t.signal_ts, Decimal(str(round(t.fees, 2))).quantize(Decimal("0.01")))
         for t in result.closed_trades()),
        key=lambda r: (r[1], r[0]),
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("offset_bps", "sessions", "costs"),
    [
        (0.0, 1, FRICTIONLESS),
        (2.0, 1, FRICTIONLESS),
        (0.0, 1, COSTS),
        (2.0, 1, COSTS),
        pytest.param(0.0, 2, FRICTIONLESS, marks=FULL),
        pytest.param(2.0, 2, FRICTIONLESS, marks=FULL),
    ],
    ids=[
        "limit-at-mid",
        "limit-below-mid",
        "limit-at-mid-costs",
        "limit-below-mid-costs",
        "limit-at-mid-2-sessions",
        "limit-below-mid-2-sessions",
    ],
)
def test_a_live_mode_session_against_the_fake_broker_matches_its_backtest(
    db, settings, tmp_path, offset_bps, sessions, costs
):
    """Live mode (the Tradier broker over the stateful fake, fills from its price tape) and the
    backtest of the stored bars (event and fast): the same signals and trades, limit entries
    included: on the synthetic sessions every open is the previous close, so with the pegged
    limit at the signal's price (offset 0) every entry fills as a limit at the open, and 2 bps
    below it every one is modified to market after 2 s. Frictionless: the fake fills at its
    prints, the cost model is zero. With costs (`COSTS`): the fake fills a market order or a
    triggered stop at the cost model's market fill of the print (spread and slippage beyond
    it; limits at the print, price-protected), as a broker whose costs the model describes
    would; the live ledger books each fill's fee from the cost model (Tradier reports none)
    and must give the backtest's fees and net P&L trade by trade. Times compare to the minute
    (live fills land on the beat, seconds into the bar)."""
    from risk.costs import cost_model_from_settings
    from strategies.feature_store import engines_reset
    from trading.brokers import broker_override
    from trading.models import Order

    settings.EVENTS_JOURNAL = tmp_path / "events.jsonl"
    settings.SESSION_POLICY_FILE = ""
    settings.ENTRY_LIMIT_OFFSET_BPS = offset_bps
    settings.CELERY_TASK_ALWAYS_EAGER = True
    for name, value in costs.items():
        setattr(settings, name, value)
    engines_reset()
    fake, broker = _live_broker()
    model = cost_model_from_settings()
    if not model.frictionless:
        fake.market_price = lambda side, touch: model.market_fill(side, Decimal(str(touch)))
    broker_override(broker)
    try:
        bars = synthetic_sessions(symbol="SPY", sessions=sessions, seed=21, end=date(2024, 5, 10))
        _live_replay(bars, fake)
    finally:
        broker_override(None)
    recorded_signals = sorted(
        (s.setup, s.bar_ts, "dry_run" if s.outcome == "submitted" else s.outcome)
        for s in Signal.objects.filter(symbol="SPY")
    )
    assert any(o == "dry_run" for _, _, o in recorded_signals)
    recorded = [
        (r[0], r[1], _minute(r[2]), r[3], r[4], [(_minute(t), q, p) for t, q, p in r[5]], *r[6:])
        for r in sorted(_recorded_trades(), key=lambda r: (r[1], r[0]))
    ]
    assert len(recorded) > 3
    fees = _recorded_fees()
    # with costs every trade paid at least its entry's 1.00 commission; frictionless nothing
    assert all((f >= Decimal("1.00")) if costs is COSTS else f == 0 for _, _, f in fees)
    assert Order.objects.filter(role="entry", broker="tradier").exists()  # live orders
    if costs is COSTS:  # entries sent to market paid 0.02 / 2 spread + 0.01 slippage = 0.02
        opens = {bar.ts: Decimal(str(bar.open)) for bar in bars}
        market = Fill.objects.filter(order__role="entry", order__order_type="market")
        assert market.exists() or offset_bps == 0
        for fill in market:
            assert fill.price == opens[_minute(fill.ts)] + Decimal("0.02")
    _entry_paths(limit_at_mid=offset_bps == 0)  # as limits at the fake's prints, or to market
    for mode in ("event", "fast"):
        result = backtest_run(
            spec=DataSpec("db", ("SPY",)), config=BacktestConfig.from_settings(), mode=mode
        )
        assert sorted((s.setup, s.bar_ts, s.outcome) for s in result.signals) == (
            recorded_signals
        ), mode
        assert _backtest_trades(result) == recorded, mode
        assert _backtest_fees(result) == fees, mode
