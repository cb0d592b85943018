"""Issue 13's rules as the lifecycle core applies them: the widened stop is the trade's stop,
PARTIAL_EXIT_PCT=1.0 sells everything at T1, a second same-bar idea in the proxy is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from risk.config import RiskConfig
from risk.costs import CostModel
from tests.trading.conftest import at
from tests.trading.helpers import make_signal, minutes
from trading.core.exits import ExitState, exit_decide
from trading.core.fills import BarPrices
from trading.models import Trade
from trading.pipeline import signal_handle

D = Decimal
T = at(14, 0)


def test_partial_exit_of_one_closes_the_whole_position_at_t1():
    state = ExitState(
        remaining_qty=7, entry_price=D("100"), stop_price=D("99"), target_one=D("100.5")
    )
    bar = BarPrices(D("100.2"), D("100.6"), D("100.1"), D("100.4"))
    action = exit_decide(state, now=T, bar=bar, flat_at=None, partial_exit_pct=D("1.0"))
    assert (action.kind, action.qty, action.reason) == ("full", 7, "target_one")
    half = exit_decide(state, now=T, bar=bar, flat_at=None, partial_exit_pct=D("0.5"))
    assert (half.kind, half.qty) == ("partial", 3)


@pytest.mark.django_db
def test_a_two_cent_stop_is_opened_at_the_floor(paper):
    config = RiskConfig(
        costs=CostModel(spread_usd=D("0.01"), slippage_usd=D("0.005")), min_stop_ticks=10
    )
    signal = make_signal(bar_ts=T, entry="100.00", stop="99.98", t1="100.50", t2="101.00")
    assert signal_handle(signal=signal, now=minutes(T, 1), config=config) == "dry_run"
    trade = Trade.objects.get(signal=signal)
    assert trade.stop_price == D("99.90")  # 10 ticks below the 100.00 entry
    # sized on the widened stop: fill 100.01, stop sells at 99.89 -> 0.12 a share
    assert trade.qty == 833


@pytest.mark.django_db
def test_spx_signal_beside_a_pending_spy_trade_of_the_same_setup_is_one_idea(paper):
    config = RiskConfig(duplicate_exposure=True)
    spy = make_signal(bar_ts=T, setup="ORB", symbol="SPY")
    assert signal_handle(signal=spy, now=minutes(T, 1), config=config) == "dry_run"
    spx = make_signal(bar_ts=T, setup="ORB", symbol="SPX")
    spx.execution_symbol = "SPY"
    spx.save(update_fields=["execution_symbol"])
    assert signal_handle(signal=spx, now=minutes(T, 1), config=config) == "risk_blocked"
    spx.refresh_from_db()
    assert "DUPLICATE_EXPOSURE" in spx.reasons
