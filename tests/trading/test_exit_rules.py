"""Properties of the pure exit rules: never sell more than is held, never lower a stop,
clock rules win, a bracket's targets are left to the broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from trading.core.exits import ExitState, exit_decide
from trading.core.fills import BarPrices

D = Decimal
NOW = datetime(2025, 9, 17, 16, 0, tzinfo=UTC)
money = st.decimals(min_value="90", max_value="110", places=2)


@st.composite
def states(draw):
    entry = draw(money)
    return ExitState(
        remaining_qty=draw(st.integers(min_value=1, max_value=500)),
        entry_price=entry,
        stop_price=entry - draw(st.decimals(min_value="0.01", max_value="3", places=2)),
        target_one=draw(st.one_of(st.none(), money)),
        target_two=draw(st.one_of(st.none(), money)),
        partial_done=draw(st.booleans()),
        trail_pct=draw(
            st.one_of(st.none(), st.decimals(min_value="0.001", max_value="0.05", places=3))
        ),
        trail_act_pct=draw(
            st.one_of(st.none(), st.decimals(min_value="0", max_value="0.02", places=3))
        ),
        trail_high=draw(st.one_of(st.none(), money)),
        deadline=NOW + timedelta(minutes=draw(st.integers(min_value=-5, max_value=60))),
        bracket=draw(st.booleans()),
    )


@st.composite
def bars(draw):
    low = draw(money)
    high = low + draw(st.decimals(min_value="0", max_value="3", places=2))
    o = draw(st.decimals(min_value=low, max_value=high, places=2))
    c = draw(st.decimals(min_value=low, max_value=high, places=2))
    return BarPrices(open=o, high=high, low=low, close=c)


@settings(max_examples=500, deadline=None)
@given(
    state=states(),
    bar=st.one_of(st.none(), bars()),
    pct=st.decimals("0", "1", places=2),
    cross=st.booleans(),
)
def test_exit_actions_are_safe(state, bar, pct, cross):
    action = exit_decide(
        state, now=NOW, bar=bar, flat_at=None, partial_exit_pct=pct, ema_cross_down=cross
    )
    assert action.kind in ("none", "partial", "full", "stop")
    assert 0 <= action.qty <= state.remaining_qty
    if action.kind == "full":
        assert action.qty == state.remaining_qty and action.reason
    if action.kind == "partial":
        assert 1 <= action.qty < state.remaining_qty
    if action.new_stop is not None:
        assert action.new_stop >= state.stop_price  # a stop only ever moves up
    if state.deadline is not None and state.deadline <= NOW:
        assert (action.kind, action.reason) == ("full", "timeout")
    if state.bracket and action.reason in ("target_one", "target_two"):
        raise AssertionError("a bracket's targets belong to the broker")
    if bar is not None and action.trail_high is not None:
        assert action.trail_high >= bar.high


def test_session_close_wins_over_everything():
    state = ExitState(remaining_qty=10, entry_price=D("100"), stop_price=D("99"))
    action = exit_decide(state, now=NOW, bar=None, flat_at=NOW, partial_exit_pct=D("0.5"))
    assert (action.kind, action.qty, action.reason) == ("full", 10, "session_close")


def test_one_share_at_target_one_only_moves_the_stop_to_break_even():
    state = ExitState(
        remaining_qty=1, entry_price=D("100"), stop_price=D("99"), target_one=D("101")
    )
    bar = BarPrices(D("100.5"), D("101.2"), D("100.4"), D("101"))
    action = exit_decide(state, now=NOW, bar=bar, flat_at=None, partial_exit_pct=D("0.5"))
    assert (action.kind, action.new_stop, action.partial_done) == ("stop", D("100"), True)
