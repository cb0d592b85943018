"""The fast kernel's costs and fees, worked by hand from the rules (risk/costs.py, risk/sizing.py,
trading/core/fills.py): one trade through the kernel (fill prices, fees, net P&L, cash), and
what the preparation decides from one signal with the risk rules' own functions (stop floor,
expected fill, T1 cost gate, pegged limit); the kernel's integer risk size by hand and against
risk.sizing.position_size on random inputs."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.backtest.config import BacktestConfig
from analytics.backtest.event import symbol_params_for

MINUTE = 60_000_000_000
T0 = 1_700_000_000 * 10**9


def _one_trade(*, comm_ps_u: int, comm_po_u: int):
    """Four bars of one symbol: the signal at $400.00 (stop 399.00, T1 402.00, T2 404.00, a
    market entry, $100 of risk), an entry bar opening at 400.00, a bar reaching T2 (high
    404.50, low 400.10: the stop is not touched), and the exit bar opening at 404.00. The
    default cost model: 1-cent spread + half a cent of slippage (1 cent against the trader,
    rounded up), SEC fee 27.80 per million and TAF 0.000166 a share (cap 8.30) on the sale."""
    from analytics.backtest.kernel import kernel_params, lifecycle_kernel

    o = np.array([40_000, 40_000, 40_020, 40_400], np.int64)
    h = np.array([40_000, 40_050, 40_450, 40_410], np.int64)
    lo = np.array([40_000, 39_980, 40_010, 40_390], np.int64)
    c = np.array([40_000, 40_020, 40_400, 40_400], np.int64)
    n = len(o)
    zeros = np.zeros(n, np.int64)
    one = np.zeros(1, np.int64)
    out = lifecycle_kernel(
        zeros, T0 + np.arange(n, dtype=np.int64) * MINUTE, o, h, lo, c,
        np.full(n, -1, np.int64), np.zeros(n, bool), zeros, zeros, zeros - 1,
        one, one, one, np.array([40_000]), np.array([39_900]), np.array([39_900]),
        np.array([40_200]), np.array([40_400]), np.ones(1, bool),
        np.array([40_001]), np.array([-1]), np.ones(1, bool),
        kernel_params(
            n_symbols=1, n_setups=1, max_concurrent=3, max_open_orders=5, cash0=10_000_000,
            adv=1, comm_ps=comm_ps_u, comm_po=comm_po_u, sec=278_000, taf=166,
            taf_max=8_300_000, limit_timeout=2 * 10**9, timeout=60 * MINUTE, risk=10_000,
        ),
    )  # fmt: skip
    s_ok, s_qty, st, entry_px, legs, leg_px, leg_reason, fees, realized = (
        out[0], out[1], out[3], out[5], out[7], out[10], out[11], out[12], out[13]
    )  # fmt: skip
    return {
        "approved": bool(s_ok[0]),
        "qty": int(s_qty[0]),
        "closed": int(st[0]) == 3,
        "entry": int(entry_px[0]),
        "exits": [int(leg_px[0, j]) for j in range(int(legs[0]))],
        "reason": int(leg_reason[0, 0]),
        "fees": int(fees[0]),
        "net": int(realized[0]),
    }


@pytest.mark.parametrize(
    ("comm_ps_u", "comm_po_u", "qty", "fees", "net"),
    [
        # no commission. Size: the stop sells at 399.00 - 0.01 = 398.99, per share 1.02 +
        # 398.99 x 27.80e-6 + 0.000166 = 1.0312579 -> floor(100 / 1.0312579) = 96; its exact
        # loss 96 x 1.02 = 97.92 + SEC ceil(1.0648) 1.07 + TAF ceil(0.0159) 0.02 = 99.01 fits.
        # The sale of 96 at 403.99 pays SEC ceil(38,783.04 x 27.80 / 1e6 = 1.0782) = 1.08 and
        # TAF 0.02: 1.10 in all; gross 96 x (403.99 - 400.01) = 382.08, net 380.98
        (0, 0, 96, 110, 38_098),
        # 0.005 a share + 1.00 an order. Size: per share 1.0412579, floor((100 - 2) / it) =
        # 94; loss 94 x 1.02 = 95.88 + buy ceil(0.47 + 1.00) 1.47 + sell 1.47 + SEC 1.05 +
        # TAF 0.02 = 99.89 fits. Fees: buy 1.47, sale 1.47 + SEC ceil(37,975.06 x 27.80e-6 =
        # 1.0557) 1.06 + TAF 0.02 = 2.55; gross 94 x 3.98 = 374.12, net 370.10
        (5_000, 1_000_000, 94, 147 + 255, 37_412 - 147 - 255),
    ],
)
def test_one_trade_fills_and_fees_worked_by_hand(comm_ps_u, comm_po_u, qty, fees, net):
    from analytics.backtest.kernel import R_T2

    got = _one_trade(comm_ps_u=comm_ps_u, comm_po_u=comm_po_u)
    assert got["approved"] and got["closed"]
    assert got["qty"] == qty
    assert got["entry"] == 40_001  # the market entry: open 400.00 + 1 cent
    assert got["exits"] == [40_399]  # T2 reached at the close, sold at 404.00 - 1 cent
    assert got["reason"] == R_T2
    assert got["fees"] == fees
    assert got["net"] == net


def _default_costs():
    from analytics.backtest.kernel import kernel_params

    return kernel_params(adv=1, sec=278_000, taf=166, taf_max=8_300_000)


def test_the_kernel_risk_size_worked_by_hand():
    from analytics.backtest.kernel import risk_size

    # entry 400.00 (fill 400.01), stop 399.95: the stop sells at 399.94; per share 0.07 +
    # 399.94 x 27.80e-6 + 0.000166 = 0.0812843 -> floor(100 / 0.0812843) = 1230; its exact
    # loss 1230 x 0.07 = 86.10 + SEC ceil(13.6755) 13.68 + TAF ceil(0.2042) 0.21 = 99.99
    assert risk_size(40_000, 40_001, 39_995, 10_000, _default_costs()) == 1230
    assert risk_size(40_000, 40_001, 40_000, 10_000, _default_costs()) == 0  # no distance


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    entry=st.integers(min_value=100, max_value=200_000),
    distance=st.integers(min_value=-3, max_value=2_000),
    risk=st.sampled_from(["1", "40", "100", "250.55", "5000"]),
    spread=st.sampled_from(["0", "0.01", "0.03"]),
    slippage=st.sampled_from(["0", "0.005", "0.0125"]),
    per_share=st.sampled_from(["0", "0.0035", "0.005"]),
    per_order=st.sampled_from(["0", "1.00"]),
    sec=st.sampled_from(["0", "27.80", "51.1"]),
    taf_max=st.sampled_from(["0", "8.30", "0.05"]),
)
def test_the_kernel_risk_size_equals_position_size(
    entry, distance, risk, spread, slippage, per_share, per_order, sec, taf_max
):
    """The kernel's integer risk size against the rule itself (risk.sizing.position_size
    without caps) on random prices, distances and cost models."""
    from analytics.backtest.fast import _kernel_settings
    from analytics.backtest.kernel import P_RISK, risk_size
    from risk.costs import CostModel
    from risk.sizing import position_size

    D = Decimal
    model = CostModel(
        spread_usd=D(spread), slippage_usd=D(slippage), commission_per_share_usd=D(per_share),
        commission_per_order_usd=D(per_order), sec_fee_per_million=D(sec),
        taf_per_share_usd=D("0.000166"), taf_max_usd=D(taf_max),
    )  # fmt: skip
    config = BacktestConfig.from_settings(overrides={"RISK_PER_TRADE_USD": risk})
    config = replace(config, costs=replace(config.costs, model=model))
    p = _kernel_settings(config, n_symbols=1, n_setups=1)
    price, stop = D(entry) / 100, D(entry - distance) / 100
    fill = model.market_fill("buy", price)
    expected = position_size(entry=price, stop=stop, risk_usd=D(risk), costs=model).qty
    assert risk_size(entry, int(fill * 100), entry - distance, p[P_RISK], p) == expected


def test_the_signal_rules_worked_by_hand():
    """Entry 400.00, stop 399.98 (2 cents), T1 400.03 under the default settings."""
    from analytics.backtest.fast import _signal_rules

    config = BacktestConfig.from_settings(overrides={"SESSION_POLICY_FILE": ""})
    params = symbol_params_for(["SPY"], config, use_db=False)
    sigs = pd.DataFrame({"rank": [0], "entry": [40_000], "stop": [39_998], "t1": [40_003]})
    got = _signal_rules(sigs, ["SPY"], params, config)
    # the floor is max(5 ticks, 3 x 1-cent spread) = 0.05 (no ATR reaches the rule): the stop
    # is widened to 400.00 - 0.05 = 399.95
    assert got["stop"].tolist() == [39_995]
    assert got["fill"].tolist() == [40_001]  # 400.00 + half the spread + slippage, rounded up
    # T1 is 0.03 above; two round trips at 400: 2 x (0.02 + 0.01112 + 0.000166) = 0.0626
    assert got["t1_ok"].tolist() == [False]
    # spread 0.25 bps <= 10: a pegged limit at 400.00 x (1 - 2 bps) = 399.92
    assert got["limit"].tolist() == [39_992]
    assert Decimal(config.risk.min_t1_cost_multiple) == 2
