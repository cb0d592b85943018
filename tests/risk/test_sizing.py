"""Sizing properties: never more risk than the budget, never a non-positive size unless it
says why (the rules then block with QTY_ZERO)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from risk.sizing import position_size

prices = st.decimals(min_value="0.50", max_value="5000", places=2)
budgets = st.decimals(min_value="0", max_value="10000", places=2)


@settings(max_examples=400, deadline=None)
@given(entry=prices, frac=st.floats(min_value=0.0001, max_value=0.5), risk=budgets)
def test_qty_times_stop_distance_never_exceeds_the_budget(entry, frac, risk):
    stop = (entry * Decimal(str(1 - frac))).quantize(Decimal("0.01"))
    result = position_size(entry=entry, stop=stop, risk_usd=risk)
    assert result.qty >= 0
    if result.qty > 0:
        assert result.qty * (entry - stop) <= risk
        # and it is the largest such size
        assert (result.qty + 1) * (entry - stop) > risk
    else:
        assert result.reason


@settings(max_examples=300, deadline=None)
@given(
    entry=prices,
    frac=st.floats(min_value=0.0001, max_value=0.5),
    risk=budgets,
    cap=st.one_of(st.none(), st.decimals(min_value="1", max_value="1000000", places=2)),
    bp=st.one_of(st.none(), st.decimals(min_value="-100", max_value="1000000", places=2)),
)
def test_caps_only_ever_shrink_the_size(entry, frac, risk, cap, bp):
    stop = (entry * Decimal(str(1 - frac))).quantize(Decimal("0.01"))
    free = position_size(entry=entry, stop=stop, risk_usd=risk)
    capped = position_size(entry=entry, stop=stop, risk_usd=risk, max_notional=cap, buying_power=bp)
    assert 0 <= capped.qty <= free.qty
    if capped.qty and cap:
        assert capped.qty * entry <= cap
    if capped.qty and bp is not None:
        assert capped.qty * entry <= bp


def test_stop_at_or_above_entry_sizes_zero_with_a_reason():
    result = position_size(entry=Decimal("10"), stop=Decimal("10"), risk_usd=Decimal("100"))
    assert result.qty == 0 and "not below" in result.reason


def test_fixed_quantity_is_returned_as_is():
    result = position_size(
        entry=Decimal("10"),
        stop=None,
        risk_usd=Decimal("0"),
        fixed_qty=5,
        max_notional=Decimal("1"),
    )
    assert result.qty == 5


@settings(max_examples=200, deadline=None)
@given(entry=prices, frac=st.floats(min_value=-0.1, max_value=0.5), risk=budgets)
def test_rules_never_approve_a_non_positive_or_over_budget_size(entry, frac, risk):
    from datetime import UTC, datetime

    from risk.config import RiskConfig
    from risk.rules import evaluate
    from risk.types import Exposure, Intent

    stop = (entry * Decimal(str(1 - frac))).quantize(Decimal("0.01"))
    decision = evaluate(
        Intent(symbol="SPY", entry_price=entry, stop_price=stop),
        Exposure(),
        RiskConfig(risk_per_trade_usd=risk),
        datetime(2025, 9, 17, 16, 0, tzinfo=UTC),
    )
    if decision.approved:
        assert decision.qty >= 1
        assert decision.qty * (entry - stop) <= risk
    if decision.qty <= 0:
        assert not decision.approved and "QTY_ZERO" in decision.reasons
