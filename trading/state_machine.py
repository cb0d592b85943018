"""The order state machine applied to rows: the table lives in `trading.core.states`; nothing
else decides what may follow what.

An illegal transition is refused and logged, never applied. Every applied transition is
persisted as an `OrderEvent` with its market-clock time and cause.
"""

from __future__ import annotations

import logging
from datetime import datetime

from autotrader_site.metrics import ORDERS_TOTAL
from trading.core.states import (  # noqa: F401 - the table's names, re-exported
    BROKER_STATUS,
    ORDER_TRANSITIONS,
    can_transition,
    path_to,
)
from trading.models import Order, OrderEvent, OrderStatus

TRANSITIONS = ORDER_TRANSITIONS

log = logging.getLogger(__name__)

S = OrderStatus


class IllegalTransition(Exception):
    pass


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
