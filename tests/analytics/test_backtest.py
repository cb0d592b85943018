"""The backtester: fast mode equals the event-driven mode, statistics are pinned on real
sessions, and the fill convention holds on hand-made bars."""

import json
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from analytics.backtest.config import BacktestConfig
from analytics.backtest.event import run_event
from analytics.backtest.fast import run_fast
from analytics.backtest.runner import DataSpec, backtest_run
from analytics.bars import bars_frame_from_csv, bars_frame_from_data
from marketdata.replay import synthetic_sessions
from tests.conftest import shared_file

# The configuration the numba kernel covers: the money-safety rules of issue 13 (fractions of
# equity, the daily limit in R, one idea per setup and symbol, the stop floor, the T1 gate and
# the cost model in sizing) off; the kernel declines any configuration that switches one on.
KERNEL_COVERED = {
    "RISK_MAX_DAILY_LOSS_R": 0,
    "RISK_MAX_ORDER_NOTIONAL_PCT": 0,
    "RISK_MAX_SYMBOL_EXPOSURE_PCT": 0,
    "RISK_MAX_GROSS_EXPOSURE_PCT": 0,
    "RISK_DUPLICATE_EXPOSURE": False,
    "RISK_MIN_STOP_ATR": 0,
    "RISK_MIN_STOP_TICKS": 0,
    "RISK_MIN_STOP_SPREADS": 0,
    "RISK_MIN_T1_COST_MULTIPLE": 0,
    "COST_SPREAD_USD": 0,
    "COST_SLIPPAGE_USD": 0,
    "COST_SEC_FEE_PER_MILLION": 0,
    "COST_TAF_PER_SHARE_USD": 0,
    "COST_TAF_MAX_USD": 0,
}


def _synthetic(symbol="SPY", sessions=6, seed=11):
    bars = synthetic_sessions(symbol=symbol, sessions=sessions, seed=seed, end=date(2024, 3, 15))
    return bars_frame_from_data(bars)


def _both(frames, config, symbols):
    event = run_event(frames, config, symbols=symbols)
    fast = run_fast(frames, config, symbols=symbols)
    return event, fast


def _assert_same(event, fast):
    assert [t.key() for t in fast.closed_trades()] == [t.key() for t in event.closed_trades()]
    assert [s.key() for s in fast.signals] == [s.key() for s in event.signals]
    assert fast.stats() == event.stats()


def test_fast_mode_equals_event_mode_on_synthetic_sessions():
    frames = {"SPY": _synthetic()}
    event, fast = _both(frames, BacktestConfig.from_settings(), ["SPY"])
    assert len(event.closed_trades()) > 10  # enough trades for the comparison to mean something
    _assert_same(event, fast)


def test_fast_kernel_and_ledger_engines_agree_and_report_which_ran():
    frames = {"SPY": _synthetic(seed=13)}
    config = BacktestConfig.from_settings(overrides=KERNEL_COVERED)
    kernel = run_fast(frames, config, symbols=["SPY"], engine="kernel")
    ledger = run_fast(frames, config, symbols=["SPY"], engine="ledger")
    assert kernel.params["engine"] == "kernel" and ledger.params["engine"] == "ledger"
    _assert_same(ledger, kernel)
    assert [s.reasons for s in kernel.signals] == [s.reasons for s in ledger.signals]


def test_the_default_money_safety_rules_and_costs_run_in_the_kernel():
    frames = {"SPY": _synthetic(seed=14, sessions=3)}
    config = BacktestConfig.from_settings()  # costs, caps, daily limit, one idea, floors on
    assert config.risk.money_rules_active()
    kernel = run_fast(frames, config, symbols=["SPY"])
    core = run_fast(frames, config, symbols=["SPY"], engine="ledger")
    assert kernel.params["engine"] == "kernel"
    _assert_same(core, kernel)
    assert [(t.fees, t.pnl) for t in kernel.closed_trades()] == [
        (t.fees, t.pnl) for t in core.closed_trades()
    ]
    assert [(s.reasons, s.qty) for s in kernel.signals] == [
        (s.reasons, s.qty) for s in core.signals
    ]
    assert all(t.fees > 0 for t in kernel.closed_trades())  # the SEC fee and TAF of the sale


def test_a_setting_the_kernel_cannot_hold_exactly_runs_the_core():
    frames = {"SPY": _synthetic(seed=14, sessions=2)}
    config = BacktestConfig.from_settings(overrides={"RISK_MAX_ORDER_NOTIONAL_PCT": "0.123456"})
    fast = run_fast(frames, config, symbols=["SPY"])
    assert fast.params["engine"] == "ledger"
    assert "RISK_MAX_ORDER_NOTIONAL_PCT" in fast.params["engine_reason"]
    with pytest.raises(ValueError, match="cannot run"):
        run_fast(frames, config, symbols=["SPY"], engine="kernel")


def test_unsupported_configurations_fall_back_to_the_ledger_pass():
    frames = {"SPY": _synthetic(seed=14)}
    config = BacktestConfig.from_settings(overrides={"TRAIL_PCT": 0.002})
    event, fast = _both(frames, config, ["SPY"])
    assert fast.params["engine"] == "ledger" and "trailing" in fast.params["engine_reason"]
    _assert_same(event, fast)
    with pytest.raises(ValueError, match="cannot run"):
        run_fast(frames, config, symbols=["SPY"], engine="kernel")


def test_fast_equals_event_with_several_symbols_and_shared_limits():
    frames = {"SPY": _synthetic("SPY", seed=3), "QQQ": _synthetic("QQQ", seed=4)}
    config = BacktestConfig.from_settings(overrides={"RISK_MAX_CONCURRENT": 1})
    event, fast = _both(frames, config, ["SPY", "QQQ"])
    assert {t.symbol for t in event.closed_trades()} == {"SPY", "QQQ"}
    assert any("MAX_CONCURRENT" in s.reasons for s in event.signals)
    _assert_same(event, fast)


def test_worst_case_fills_are_never_better():
    frames = {"SPY": _synthetic()}
    normal = run_fast(frames, BacktestConfig.from_settings(), symbols=["SPY"])
    worst = run_fast(frames, BacktestConfig.from_settings(worst_case=True), symbols=["SPY"])
    assert worst.stats()["ALL"]["total_pnl"] < normal.stats()["ALL"]["total_pnl"]
    _assert_same(run_event(frames, BacktestConfig.from_settings(worst_case=True), symbols=["SPY"]),
                 worst)  # fmt: skip


def test_trades_follow_the_fill_convention():
    frame = _synthetic()
    result = run_event({"SPY": frame}, BacktestConfig.from_settings(), symbols=["SPY"])
    for trade in result.closed_trades():
        # decided at the signal bar's close, filled on a later bar
        assert trade.entry_ts > trade.signal_ts
        entry_bar = frame.loc[trade.entry_ts]
        # a pegged limit fills at or below the open; the market fallback at the open + costs
        assert trade.entry_price <= round(entry_bar["open"] * 1.0002, 2) + 1e-9
        assert trade.entry_price >= entry_bar["low"] - 1e-9
        for leg in trade.legs:
            assert leg.ts >= trade.entry_ts
            if leg.reason == "stop":
                bar = frame.loc[leg.ts]
                assert bar["low"] <= trade.stop or leg.price <= bar["open"]
        assert sum(leg.qty for leg in trade.legs) == trade.qty
        assert trade.exit_reason in {
            "stop", "target_one", "target_two", "timeout", "ema_cross_down", "session_close",
            "trailing",
        }  # fmt: skip


def test_setups_filter_limits_the_trades():
    frames = {"SPY": _synthetic()}
    only = run_fast(frames, BacktestConfig.from_settings(setups=["EMA_CROSS"]), symbols=["SPY"])
    assert {t.setup for t in only.closed_trades()} <= {"EMA_CROSS"}
    with pytest.raises(ValueError, match="unknown setups"):
        BacktestConfig.from_settings(setups=["NOPE"])


def test_overrides_change_the_configs_only_for_the_run():
    from django.conf import settings

    config = BacktestConfig.from_settings(overrides={"RISK_STOP_ATR_MULTIPLIER": 2.5})
    assert config.strategy.stop_atr == 2.5
    assert settings.RISK_STOP_ATR_MULTIPLIER == 1.2
    assert config.risk.risk_per_trade_usd == Decimal("100")


@pytest.mark.parametrize("name", ["SPY_1m_2011-01.csv", "SPY_1m_2011-03.csv"])
def test_fast_mode_equals_event_mode_on_the_shared_spy_sessions(name):
    frame = bars_frame_from_csv(shared_file(f"data/{name}"))
    # without the daily limit (3 R) the ledger halts less often: enough trades to compare
    config = BacktestConfig.from_settings(overrides={"RISK_MAX_DAILY_LOSS_R": 0})
    event, fast = _both({"SPY": frame}, config, ["SPY"])
    assert len(event.closed_trades()) > 100
    _assert_same(event, fast)


# CHARACTERISATION TEST: these numbers were copied from the program's own output (a LEAN-style
# regression pin, not a worked-out expectation). The fast-vs-event equality tests, the parity
# suite and the kernel differential test carry the correctness weight; this one only makes a
# behaviour change in features, setups, risk, fills or exits visible. Update deliberately, with
# the reason in the commit.
EXPECTED_SPY_2011_01 = {
    # re-pinned for issue 13's fill model (branch fills): fills priced by the cost model sizing
    # uses (1 cent spread + 0.5 cent slippage, rounded against the trader, SEC/TAF on sales)
    # instead of 2 + 1 bps, the pegged limit seeing only the next open, levels re-anchored on
    # the fill, the session close and time stops on the clock. Before: ALL (186, 0.290323,
    # -1352.55) (issues 13 + 15 combined)
    "ALL": (187, 0.368984, -1076.49),
    "EMA_CROSS": (32, 0.40625, -186.76),
    "HOD_FAIL": (44, 0.431818, -264.39),
    "ORB": (5, 0.4, -36.88),
    "SIGMA_FADE": (20, 0.45, -81.28),
    "TREND_PULLBACK": (35, 0.285714, -262.13),
    "VWAP_MEAN": (37, 0.27027, -207.44),
    "VWAP_RECLAIM": (14, 0.428571, -37.61),
}


def test_per_setup_statistics_on_the_shared_spy_january_are_pinned():
    """Characterisation: pinned from program output (see EXPECTED_SPY_2011_01)."""
    frame = bars_frame_from_csv(shared_file("data/SPY_1m_2011-01.csv"))
    result = run_fast({"SPY": frame}, BacktestConfig.from_settings(), symbols=["SPY"])
    stats = result.stats()
    got = {k: (v["trades"], v["win_rate"], v["total_pnl"]) for k, v in stats.items()}
    assert got == {k: (n, w, pytest.approx(p, abs=0.005)) for k, (n, w, p) in
                   EXPECTED_SPY_2011_01.items()}  # fmt: skip
    assert stats["ALL"]["max_drawdown"] >= -min(0.0, stats["ALL"]["total_pnl"]) - 1e-6


def test_backtest_command_writes_json_and_report(tmp_path):
    frame = _synthetic(sessions=3)
    csv = tmp_path / "spy.csv"
    out = frame[["open", "high", "low", "close", "volume"]].copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(csv, index_label="ts")
    call_command(
        "backtest", data=str(csv), symbol="SPY", json_out=str(tmp_path / "r.json"),
        report=str(tmp_path / "report"), mode="event", no_progress=True,
    )  # fmt: skip
    body = json.loads((tmp_path / "r.json").read_text())
    assert body["mode"] == "event" and body["bars"] == len(frame)
    assert body["stats"]["ALL"]["trades"] == len(body["trades"])
    html = (tmp_path / "report" / "index.html").read_text()
    assert "data:image/png;base64," in html and "Equity and drawdown" in html
    assert (tmp_path / "report" / "equity_drawdown.png").stat().st_size > 5000


def test_bad_inputs_give_clear_errors(tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no such file"):
        call_command("backtest", data=str(tmp_path / "missing.csv"), no_progress=True)
    with pytest.raises(ValueError, match="mode"):
        backtest_run(spec=DataSpec("db", ("SPY",)), config=BacktestConfig.from_settings(),
                     mode="turbo", frames={})  # fmt: skip


@pytest.mark.django_db
def test_backtest_from_stored_bars_can_be_persisted():
    from analytics.models import BacktestRun
    from marketdata.services import bars_upsert

    bars_upsert(bars=synthetic_sessions(symbol="SPY", sessions=3, seed=5, end=date(2024, 3, 15)))
    call_command("backtest", data="db", symbol="SPY", persist=True, name="db run", no_progress=True)
    run = BacktestRun.objects.get(name="db run")
    assert run.params["data"] == "db"
    assert run.stats["overall"]["ALL"]["trades"] == len(run.trades)


def test_index_signals_execute_in_the_etf_with_translated_levels():
    spy = _synthetic("SPY", seed=31)
    spx = spy.copy()
    spx[["open", "high", "low", "close"]] = (spy[["open", "high", "low", "close"]] * 10).round(2)
    spx["volume"] = 0.0  # indices have no volume: the proxy's volume is used
    frames = {"SPX": spx, "SPY": spy}
    event, fast = _both(frames, BacktestConfig.from_settings(), ["SPX"])
    assert fast.params["engine"] == "ledger"
    trades = event.closed_trades()
    assert trades and all(t.symbol == "SPX" and t.execution_symbol == "SPY" for t in trades)
    for t in trades:  # levels are on SPY's price scale
        assert abs(t.stop - t.entry_price) < 0.05 * t.entry_price
    _assert_same(event, fast)


def test_daily_loss_kill_switch_halts_and_flattens_in_both_modes():
    frames = {"SPY": _synthetic(seed=11)}
    config = BacktestConfig.from_settings(overrides={"RISK_MAX_DAILY_LOSS_USD": "150"})
    event, fast = _both(frames, config, ["SPY"])
    assert fast.params["engine"] == "kernel"
    # issue 13: an entry is refused when stopping out every live trade and it could take the
    # day past the limit, so on these gap-free bars the limit is never reached and the kill
    # switch (tests/trading/test_operations.py) has nothing to do; both modes agree on it
    assert any("DAILY_LOSS_LIMIT" in s.reasons for s in event.signals)
    blocked = [s for s in event.signals if "TRADING_HALTED" in s.reasons]
    if blocked:
        halted_at = blocked[0].bar_ts
        assert all("TRADING_HALTED" in s.reasons for s in event.signals if s.bar_ts >= halted_at)
    by_day: dict = {}
    for trade in event.closed_trades():
        by_day[trade.session_date()] = by_day.get(trade.session_date(), 0.0) + trade.pnl
    assert min(by_day.values()) > -150 * 1.05  # the limit, plus the slippage allowance
    _assert_same(event, fast)


def test_session_policies_apply_in_both_modes(settings):
    from pathlib import Path

    settings.SESSION_POLICY_FILE = str(
        Path(__file__).resolve().parent.parent / "fixtures" / "analytics" / "session_policies.yaml"
    )
    frames = {"SPY": _synthetic(seed=11)}
    config = BacktestConfig.from_settings()
    assert config.policy_book is not None
    event, fast = _both(frames, config, ["SPY"])
    assert fast.params["engine"] == "ledger"
    codes = {c for s in event.signals if s.outcome == "policy_blocked" for c in s.reasons}
    assert {"POLICY_NO_SESSION", "POLICY_SETUP_BANNED"} & codes
    assert not any(t.setup == "SIGMA_FADE" for t in event.closed_trades())
    _assert_same(event, fast)
