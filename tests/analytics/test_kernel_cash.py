"""The fast kernel's cash rules equal the core's (risk.rules, trading.core.lifecycle.exposure):
entries in flight reserve their worst-case notional, sizing leaves MIN_CASH_USD, and
INSUFFICIENT_CASH judges what is left. Hand-worked bars first, then the shared SPY sessions
where cash binds (the kernel once ignored both rules and traded more than the core)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.backtest.config import BacktestConfig
from analytics.backtest.fast import run_fast
from analytics.backtest.kernel import BIT_CASH as INSUFFICIENT_CASH
from analytics.backtest.kernel import BIT_QTY_ZERO as QTY_ZERO
from analytics.bars import bars_frame_from_csv
from tests.analytics.test_backtest import KERNEL_COVERED
from tests.conftest import shared_file

MINUTE = 60_000_000_000


def _kernel(*, cash_c, min_cash_c, entries=(10_000, 10_000), stops=(9_900, 9_900),
            use_limit=False, offset2=0):  # fmt: skip
    """Two symbols, two minutes, flat bars at $100.00 (high 100.50, low 99.50: no stop is
    hit); one signal per symbol on the first minute, so the second is decided while the
    first one's entry is still working. Risk $100.00 per trade."""
    from analytics.backtest.kernel import kernel_params, lifecycle_kernel

    n = 4  # bars: (sym 0, t0), (sym 1, t0), (sym 0, t1), (sym 1, t1)
    g_sym = np.array([0, 1, 0, 1], np.int64)
    g_ts = np.array([0, 0, MINUTE, MINUTE], np.int64) + 1_700_000_000 * 10**9
    flat = np.full(n, 10_000, np.int64)
    entries, stops = np.array(entries, np.int64), np.array(stops, np.int64)
    # frictionless: the expected fill is the signal's price; the pegged limit is
    # round_half_up(entry x (1 - offset2 / 20000)); the kernel sizes floor($100.00 / distance)
    limits = (
        (entries * (20_000 - offset2) + 10_000) // 20_000 if use_limit else np.full(2, -1, np.int64)
    )
    zeros = np.zeros(n, np.int64)
    out = lifecycle_kernel(
        g_sym, g_ts, flat, flat + 50, flat - 50, flat, np.full(n, -1, np.int64),
        np.zeros(n, bool), zeros, zeros, zeros - 1,
        np.array([0, 1], np.int64), np.array([0, 1], np.int64), np.zeros(2, np.int64),
        entries, stops, stops, np.full(2, -1, np.int64), np.full(2, -1, np.int64),
        np.ones(2, bool), entries, limits, np.ones(2, bool),
        kernel_params(
            n_symbols=2, n_setups=1, max_concurrent=5, max_open_orders=10, min_cash=min_cash_c,
            cash0=cash_c, limit_timeout=60 * 10**9, timeout=60 * MINUTE, risk=10_000,
        ),
    )  # fmt: skip
    s_ok, s_qty, s_bits = out[0], out[1], out[2]
    return s_ok.tolist(), s_qty.tolist(), s_bits.tolist()


def test_a_working_entry_reserves_its_cash_for_the_next_decision():
    # $2,000 cash: risk sizing gives floor(100 / 1.00) = 100 shares, cash caps the first at
    # floor(2000 / 100) = 20; the second sees 2000 - 20 x 100 = 0 unreserved: 0 shares
    ok, qty, bits = _kernel(cash_c=200_000, min_cash_c=0)
    assert ok == [True, False]
    assert qty == [20, 0]
    assert bits == [0, QTY_ZERO]


def test_min_cash_is_kept_out_of_sizing_and_judged_on_what_is_left():
    # MIN_CASH $500 of $2,000: the first buys floor((2000 - 500) / 100) = 15 and leaves
    # exactly 500 (passes: left >= MIN_CASH); the second has 2000 - 1500 = 500 unreserved,
    # 0 spendable above the floor: 0 shares, and 500 - 0 >= 500 still passes the cash rule
    ok, qty, bits = _kernel(cash_c=200_000, min_cash_c=50_000)
    assert qty == [15, 0] and ok == [True, False]
    assert bits == [0, QTY_ZERO]
    # $400 cash under a $500 floor: nothing to size, and 400 - 0 < 500 fails the cash rule
    ok, qty, bits = _kernel(cash_c=40_000, min_cash_c=50_000)
    assert qty == [0, 0]
    assert bits == [QTY_ZERO | INSUFFICIENT_CASH] * 2


def test_a_pegged_limit_below_the_signal_reserves_its_market_fallback():
    # 10 bps below $100.00: limit = round_half_up(10000 x 0.999) = 9990 cents, but the limit
    # becomes a market order at the signal's $100.00 after its timeout, so it reserves the
    # larger: 20 x 100.00 = 2000.00 of the $2,000 (the first is sized floor(2000 / 100) = 20).
    # The second ($2.00 entry, $1.00 stop) has 0 left: 0 shares. Reserved at the limit it would
    # have had floor((2000 - 1998) / 2) = 1.
    ok, qty, bits = _kernel(
        cash_c=200_000, min_cash_c=0, entries=(10_000, 200), stops=(9_900, 100),
        use_limit=True, offset2=20,
    )  # fmt: skip
    assert qty == [20, 0] and ok == [True, False] and bits == [0, QTY_ZERO]


def test_a_pegged_limit_above_the_signal_reserves_its_limit():
    # 10 bps above: limit = round_half_up(10000 x 1.001) = 10010 cents. $2,010: the first is
    # sized floor(2010 / 100.00) = 20 and reserves 20 x 100.10 = 2002.00; the second gets
    # floor((2010 - 2002) / 2) = 4 shares (at the signal's price it would have had 5).
    ok, qty, bits = _kernel(
        cash_c=201_000, min_cash_c=0, entries=(10_000, 200), stops=(9_900, 100),
        use_limit=True, offset2=-20,
    )  # fmt: skip
    assert qty == [20, 4] and ok == [True, True] and bits == [0, 0]


@pytest.mark.parametrize(
    "cash",
    [
        {},  # the default PAPER_STARTING_CASH_USD
        {"PAPER_STARTING_CASH_USD": "30000", "MIN_CASH_USD": "1000"},
    ],
)
def test_kernel_equals_core_on_the_shared_spy_sessions_where_cash_binds(cash):
    frame = pd.concat(
        [bars_frame_from_csv(shared_file(f"data/SPY_1m_2011-0{m}.csv")) for m in (1, 3)]
    )
    frames = {"SPY": frame}
    config = BacktestConfig.from_settings(overrides={**KERNEL_COVERED, **cash})
    kernel = run_fast(frames, config, symbols=["SPY"], engine="kernel")
    core = run_fast(frames, config, symbols=["SPY"], engine="ledger")
    assert [t.key() for t in kernel.closed_trades()] == [t.key() for t in core.closed_trades()]
    assert [(s.key(), s.reasons, s.qty) for s in kernel.signals] == [
        (s.key(), s.reasons, s.qty) for s in core.signals
    ]
    # the comparison means something only where cash binds: unlimited cash sizes differently
    rich = BacktestConfig.from_settings(
        overrides={**KERNEL_COVERED, "PAPER_STARTING_CASH_USD": "100000000"}
    )
    unbound = run_fast(frames, rich, symbols=["SPY"], engine="kernel")
    assert [s.qty for s in unbound.signals] != [s.qty for s in kernel.signals]
