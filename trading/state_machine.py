"""The order state machine: a transition table, nothing else decides what may follow what.

An illegal transition is refused and logged, never applied. Every applied transition is
persisted as an `OrderEvent` with its market-clock time and cause.
"""

from __future__ import annotations

import logging
from datetime import datetime

from autotrader_site.metrics import ORDERS_TOTAL
from trading.models import Order, OrderEvent, OrderStatus

log = logging.getLogger(__name__)

S = OrderStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED, S.CANCELLED}),
    S.SUBMITTED: frozenset(
        {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}
    ),
    S.OPEN: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}

# Tradier's status words → ours.
BROKER_STATUS = {
    "pending": S.SUBMITTED,
    "open": S.OPEN,
    "partially_filled": S.PARTIALLY_FILLED,
    "filled": S.FILLED,
    "expired": S.EXPIRED,
    "canceled": S.CANCELLED,
    "cancelled": S.CANCELLED,
    "pending_cancel": S.OPEN,
    "rejected": S.REJECTED,
    "error": S.REJECTED,
    "calculated": S.SUBMITTED,
    "accepted_for_bidding": S.SUBMITTED,
    "held": S.SUBMITTED,
    "submitted": S.SUBMITTED,
    "new": S.NEW,
}


class IllegalTransition(Exception):
    pass


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def path_to(from_status: str, to_status: str) -> list[str]:
    """The shortest legal path of statuses after `from_status` ending at `to_status` (used when
    the broker reports a later state than we saw, e.g. new → filled), or [] if none."""
    if from_status == to_status:
        return []
    frontier = [[from_status]]
    seen = {from_status}
    while frontier:
        nxt = []
        for path in frontier:
            for candidate in sorted(TRANSITIONS.get(path[-1], ())):
                if candidate in seen:
                    continue
                if candidate == to_status:
                    return path[1:] + [candidate]
                seen.add(candidate)
                nxt.append(path + [candidate])
        frontier = nxt
    return []


def order_transition(order: Order, to_status: str, *, cause: str, at: datetime) -> bool:
    """Apply one transition and persist it. Returns False (and logs) when refused; a repeat of
    the current status is a quiet no-op except partially_filled → partially_filled (a fill)."""
    from_status = order.status
    if from_status == to_status and to_status != S.PARTIALLY_FILLED:
        return False
    if not can_transition(from_status, to_status):
        log.warning(
            "order %s (%s): illegal transition %s -> %s refused (%s)",
            order.pk,
            order.tag,
            from_status,
            to_status,
            cause,
        )
        return False
    order.status = to_status
    order.save(update_fields=["status", "updated_at", "filled_qty", "avg_fill_price"])
    OrderEvent.objects.create(
        order=order, from_status=from_status, to_status=to_status, cause=cause[:255], at=at
    )
    ORDERS_TOTAL.labels(broker=order.broker, status=to_status).inc()
    return True


def order_advance(order: Order, to_status: str, *, cause: str, at: datetime) -> bool:
    """Walk the shortest legal path to `to_status` (each step persisted). False if none."""
    steps = path_to(order.status, to_status)
    if not steps:
        if order.status != to_status:
            log.warning(
                "order %s: no legal path %s -> %s (%s)", order.pk, order.status, to_status, cause
            )
        return False
    for step in steps:
        order_transition(order, step, cause=cause, at=at)
    return True
