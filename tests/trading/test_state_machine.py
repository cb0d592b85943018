"""The order state machine: a table; illegal transitions refused and logged; every applied
transition persisted with time and cause."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading.models import TERMINAL_STATUSES, Order, OrderEvent, OrderStatus
from trading.state_machine import (
    TRANSITIONS,
    can_transition,
    order_advance,
    order_transition,
    path_to,
)

T0 = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)
ALL = list(OrderStatus.values)

# The order lifecycle as the design states it, written out pair by pair (the reference the
# table is checked against; not derived from the table). A fill may repeat partially_filled.
LEGAL = {
    ("new", "submitted"), ("new", "rejected"), ("new", "cancelled"),
    ("submitted", "open"), ("submitted", "partially_filled"), ("submitted", "filled"),
    ("submitted", "cancelled"), ("submitted", "rejected"), ("submitted", "expired"),
    ("open", "partially_filled"), ("open", "filled"), ("open", "cancelled"),
    ("open", "expired"), ("open", "rejected"),
    ("partially_filled", "partially_filled"), ("partially_filled", "filled"),
    ("partially_filled", "cancelled"), ("partially_filled", "expired"),
}  # fmt: skip


def _order(tag="t-1"):
    return Order.objects.create(
        tag=tag, symbol="SPY", side="buy", qty=1, order_type="market", created_at=T0
    )


def test_table_is_the_designed_lifecycle():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == LEGAL


def test_table_covers_every_status_and_terminal_states_have_no_exit():
    assert set(TRANSITIONS) == set(ALL)
    for status in TERMINAL_STATUSES:
        assert TRANSITIONS[status] == frozenset()
    assert can_transition("new", "submitted") and not can_transition("filled", "open")


def test_path_to_walks_only_legal_steps():
    assert path_to("new", "filled") == ["submitted", "filled"]
    assert path_to("open", "new") == []


@pytest.mark.django_db
def test_illegal_transition_is_refused_and_logged(caplog):
    order = _order()
    with caplog.at_level(logging.WARNING, logger="trading.state_machine"):
        assert order_transition(order, OrderStatus.FILLED, cause="bogus", at=T0) is False
    assert order.status == OrderStatus.NEW
    assert "illegal transition new -> filled refused" in caplog.text
    assert not OrderEvent.objects.filter(order=order).exists()


@pytest.mark.django_db
def test_each_transition_is_persisted_with_time_and_cause():
    order = _order()
    order_advance(order, OrderStatus.FILLED, cause="fill 1 @ 10", at=T0 + timedelta(seconds=5))
    events = list(order.events.values_list("from_status", "to_status", "cause", "at"))
    assert events == [
        ("new", "submitted", "fill 1 @ 10", T0 + timedelta(seconds=5)),
        ("submitted", "filled", "fill 1 @ 10", T0 + timedelta(seconds=5)),
    ]
    order.refresh_from_db()
    assert order.status == "filled"


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(st.sampled_from(ALL), min_size=1, max_size=12))
def test_any_event_sequence_keeps_the_order_on_the_table(events):
    Order.objects.all().delete()
    order = _order("t-prop")
    history = [order.status]
    for step, target in enumerate(events):
        before = order.status
        applied = order_transition(order, target, cause=f"e{step}", at=T0 + timedelta(seconds=step))
        assert applied == ((before, target) in LEGAL)
        if applied:
            history.append(target)
        else:
            assert order.status == before
    persisted = [e.to_status for e in OrderEvent.objects.filter(order=order).order_by("id")]
    assert persisted == history[1:]
    for a, b in zip(history, history[1:], strict=False):
        assert (a, b) in LEGAL
    order.refresh_from_db()
    assert order.status == history[-1]


# --- the trade's state machine ---------------------------------------------------------------
TRADE_LEGAL = {("pending", "open"), ("pending", "cancelled"), ("open", "closed")}


def test_trade_table_is_the_designed_lifecycle():
    from trading.core.states import TRADE_TRANSITIONS

    assert {(a, b) for a, targets in TRADE_TRANSITIONS.items() for b in targets} == TRADE_LEGAL


@pytest.mark.django_db
@pytest.mark.parametrize("start, target", [("cancelled", "pending"), ("closed", "open"),
                                           ("pending", "closed"), ("open", "pending")])  # fmt: skip
def test_illegal_trade_transition_is_refused_logged_and_changes_nothing(caplog, start, target):
    from trading.models import Trade
    from trading.orm_ledger import OrmLedger

    trade = Trade.objects.create(
        symbol="SPY", execution_symbol="SPY", qty=10, stop_price=99, initial_stop_price=99,
        status=start, created_at=T0,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="trading.orm_ledger"):
        ok = OrmLedger().trade_set(trade, status=target, closed_at=None, exit_reason="x")
    assert ok is False
    assert f"illegal transition {start} -> {target} refused" in caplog.text
    trade.refresh_from_db()
    assert (trade.status, trade.exit_reason) == (start, "")


def test_memory_ledger_refuses_the_same_trade_transitions():
    from analytics.backtest.memory_ledger import MemoryLedger
    from trading.core.states import TRADE_TRANSITIONS

    class Trade:  # the fields trade_set touches
        def __init__(self, status):
            self.status, self.exit_reason = status, ""

    ledger = MemoryLedger.__new__(MemoryLedger)
    for start in TRADE_TRANSITIONS:
        for target in TRADE_TRANSITIONS:
            if start == target:
                continue
            trade = Trade(start)
            allowed = (start, target) in TRADE_LEGAL
            if allowed:
                continue  # moving a trade needs the full ledger (records); refusals do not
            assert ledger.trade_set(trade, status=target, exit_reason="x") is False
            assert (trade.status, trade.exit_reason) == (start, "")
