"""Differential property test: the numba lifecycle kernel of fast mode against the lifecycle
core (`trading.core`, run by fast mode's ledger engine over the in-memory ledger). Random bar
sequences (seeded synthetic sessions) and random settings within what the kernel declares it
covers give identical trade lists and signal outcomes.

The kernel runs with numba's bounds checking on (`NUMBA_BOUNDSCHECK=1`, a fresh compile cache):
the check re-runs this module's property in a subprocess with that environment."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
BOUNDSCHECK = os.environ.get("NUMBA_BOUNDSCHECK") == "1"


# Every default rule is in the kernel (costs, fees, the money-safety rules of issue 13): the
# property draws each of them on and off, at the defaults and at other exact values.
COSTS = st.sampled_from(
    [
        {},  # the defaults: 1-cent spread, half a cent of slippage, SEC fee and TAF
        {"COST_SPREAD_USD": "0", "COST_SLIPPAGE_USD": "0", "COST_SEC_FEE_PER_MILLION": "0",
         "COST_TAF_PER_SHARE_USD": "0", "COST_TAF_MAX_USD": "0"},  # frictionless
        {"COST_SPREAD_USD": "0.02", "COST_SLIPPAGE_USD": "0.01",
         "COST_COMMISSION_PER_SHARE_USD": "0.005", "COST_COMMISSION_PER_ORDER_USD": "1.00",
         "COST_TAF_MAX_USD": "0.05"},  # a wider spread, commissions, a binding TAF cap
        {"COST_SPREAD_USD": "0.05", "COST_SLIPPAGE_USD": "0.0025",
         "COST_SEC_FEE_PER_MILLION": "51.10"},  # sub-cent adverse part rounded up
    ]
)  # fmt: skip
MONEY = st.sampled_from(
    [
        {},  # the defaults: 0.25 / 0.5 / 1.0 of equity, 3 R a day, one idea, stop floor, T1 gate
        {"RISK_MAX_ORDER_NOTIONAL_PCT": "0", "RISK_MAX_SYMBOL_EXPOSURE_PCT": "0",
         "RISK_MAX_GROSS_EXPOSURE_PCT": "0", "RISK_MAX_DAILY_LOSS_R": "0",
         "RISK_DUPLICATE_EXPOSURE": False, "RISK_MIN_STOP_ATR": "0", "RISK_MIN_STOP_TICKS": 0,
         "RISK_MIN_STOP_SPREADS": "0", "RISK_MIN_T1_COST_MULTIPLE": "0"},  # all off
        {"RISK_MAX_ORDER_NOTIONAL_PCT": "0.1", "RISK_MAX_SYMBOL_EXPOSURE_PCT": "0.15",
         "RISK_MAX_GROSS_EXPOSURE_PCT": "0.3", "RISK_MAX_DAILY_LOSS_R": "1",
         "RISK_IDEA_WINDOW_SEC": 1800, "RISK_MIN_STOP_TICKS": 20,
         "RISK_MIN_T1_COST_MULTIPLE": "6"},  # tight: every cap and the daily limit bind
        {"RISK_MAX_DAILY_LOSS_R": "0", "RISK_MAX_DAILY_LOSS_USD": "120",
         "RISK_DUPLICATE_EXPOSURE": False, "RISK_MIN_STOP_SPREADS": "8",
         "RISK_MAX_ORDER_NOTIONAL_USD": "20000"},  # a USD daily limit and order cap
    ]
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    os.environ.get("FAULTS_FULL") != "1",
    reason="over 5 min once it generates real examples: FAULTS_FULL=1 pytest this file",
)
def test_kernel_equals_core_with_numba_bounds_checking(tmp_path):
    env = {
        **os.environ,
        "NUMBA_BOUNDSCHECK": "1",
        "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"),  # compile afresh, checks included
    }
    target = f"{Path(__file__).relative_to(ROOT)}::test_kernel_matches_core_on_random_bars"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout


@pytest.mark.skipif(not BOUNDSCHECK, reason="run by the bounds-checked subprocess above")
@settings(
    max_examples=int(os.environ.get("KERNEL_DIFF_EXAMPLES", "12")),  # more: a longer hunt
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    sessions=st.integers(min_value=2, max_value=3),
    risk_usd=st.sampled_from(["40", "100", "250"]),
    max_concurrent=st.integers(min_value=1, max_value=3),
    partial=st.sampled_from([0.25, 0.5, 1.0]),
    timeout_min=st.integers(min_value=3, max_value=60),
    stop_atr=st.sampled_from([0.8, 1.2, 2.0]),
    t1_atr=st.sampled_from([0.5, 1.0, 1.5]),
    # the kernel is frictionless (it declines any cost): what varies is the pegged limit, at
    # the mid or below it, living 2 s (only the next open counts) or whole bars
    offset=st.sampled_from([0.0, 1.0, 2.0]),
    limit_timeout=st.sampled_from([2.0, 60.0, 150.0]),
    worst_case=st.booleans(),
    # cash that binds (SPY near 400-500: a few shares fill 25,000) or never does, with and
    # without a floor: the reservation of entries in flight and MIN_CASH_USD in sizing and in
    # INSUFFICIENT_CASH (the kernel once ignored both: 9,954 vs 9,214 trades on a long run)
    starting_cash=st.sampled_from(["25000", "100000", "10000000"]),
    min_cash=st.sampled_from(["0", "5000"]),
    costs=COSTS,
    money=MONEY,
    two_symbols=st.booleans(),
)
def test_kernel_matches_core_on_random_bars(
    seed, sessions, risk_usd, max_concurrent, partial, timeout_min, stop_atr, t1_atr,
    offset, limit_timeout, worst_case, starting_cash, min_cash, costs, money, two_symbols,
):  # fmt: skip
    import numba

    from analytics.backtest.config import BacktestConfig
    from analytics.backtest.event import symbol_params_for
    from analytics.backtest.fast import kernel_unsupported, run_fast
    from analytics.bars import bars_frame_from_data
    from marketdata.replay import synthetic_sessions

    assert numba.config.BOUNDSCHECK == 1
    bars = synthetic_sessions(symbol="SPY", sessions=sessions, seed=seed, end=date(2024, 3, 15))
    frames = {"SPY": bars_frame_from_data(bars)}
    if two_symbols:  # shared cash, gross exposure and daily P&L across symbols
        other = synthetic_sessions(
            symbol="QQQ", sessions=sessions, seed=seed + 1, end=date(2024, 3, 15), start_price=180
        )
        frames["QQQ"] = bars_frame_from_data(other)
    symbols = list(frames)
    config = BacktestConfig.from_settings(
        overrides={
            "RISK_PER_TRADE_USD": risk_usd,
            "RISK_MAX_CONCURRENT": max_concurrent,
            "PARTIAL_EXIT_PCT": partial,
            "TRADE_TIMEOUT_MIN": timeout_min,
            "RISK_STOP_ATR_MULTIPLIER": stop_atr,
            "TARGET_ONE_ATR_MULTIPLIER": t1_atr,
            "ENTRY_LIMIT_OFFSET_BPS": offset,
            "ENTRY_LIMIT_TIMEOUT_SEC": limit_timeout,
            "RISK_MAX_DAILY_LOSS_USD": "0",
            "SESSION_POLICY_FILE": "",
            "PAPER_STARTING_CASH_USD": starting_cash,
            "MIN_CASH_USD": min_cash,
            **costs,
            **money,
        },
        worst_case=worst_case,
    )
    params = symbol_params_for(symbols, config, use_db=False)
    assume(kernel_unsupported(frames, config, symbols, params) == "")
    kernel = run_fast(frames, config, symbols=symbols, engine="kernel")
    core = run_fast(frames, config, symbols=symbols, engine="ledger")
    assert kernel.params["engine"] == "kernel" and core.params["engine"] == "ledger"

    def trade(t):  # prices, quantities, reasons, and the fees and net P&L in cents
        return t.key() + (t.stop, round(t.fees * 100), round(t.pnl * 100))

    assert [trade(t) for t in kernel.closed_trades()] == [trade(t) for t in core.closed_trades()]
    assert [(s.key(), s.reasons, s.qty) for s in kernel.signals] == [
        (s.key(), s.reasons, s.qty) for s in core.signals
    ]
    assert [c.as_dict() for c in kernel.state_changes] == [c.as_dict() for c in core.state_changes]
