"""Orders: create, send, cancel and sync with the broker, and apply the broker's reports (the
one apply path of polls, reconciliation and the account event stream)."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from autotrader_site.clock import clock
from trading.after_commit import atomic as sending_atomic
from trading.brokers import broker_get
from trading.brokers.base import Broker, BrokerError
from trading.core import lifecycle
from trading.core.states import BROKER_STATUS
from trading.models import Order, OrderClass, OrderStatus
from trading.orm_ledger import OrmLedger, order_create, order_submit, unique_tag
from trading.state_machine import order_advance

log = logging.getLogger(__name__)
__all__ = [
    "order_apply_remote",
    "order_cancel",
    "order_create",
    "order_dead",
    "order_submit",
    "order_sync",
    "unique_tag",
]


def order_cancel(
    *, order: Order, now: datetime | None = None, cause: str = "cancel requested", broker=None
) -> Order:
    """Cancel a working order at the broker, then in the ledger (a never-filled entry takes
    its trade with it). A protective stop of an open trade is re-placed by the exit manager's
    protection pass."""
    lifecycle.cancel(OrmLedger(broker), order, now=now or clock.now(), cause=cause)
    order.refresh_from_db()
    return order


def order_dead(order: Order, now: datetime) -> None:
    """An order died at the broker: close a never-filled entry's trade."""
    if order.role == "entry" and order.trade_id:
        lifecycle.order_dead(OrmLedger(), order, now=now, reason="entry_not_filled")


def order_sync(*, order: Order, now: datetime, broker: Broker | None = None) -> Order:
    """Bring one order in line with the broker's view (status and fills)."""
    broker = broker or broker_get()
    if not order.broker_order_id:
        return order
    try:
        remote = broker.order(order.broker_order_id)
    except BrokerError as exc:
        log.warning("order %s: broker lookup failed: %s", order.tag, exc)
        return order
    return order_apply_remote(order=order, remote=remote, now=now)


def order_apply_remote(*, order: Order, remote, now: datetime) -> Order:
    """Apply a broker report: new fills first (through the lifecycle, each booking its fee
    from the symbol's cost model: the report carries no commission), then the status."""
    if order.parent_id is None and (
        (order.order_class == OrderClass.OTOCO and len(remote.legs) == 3)
        or (order.order_class == OrderClass.OCO and len(remote.legs) == 2)
    ):
        return _bracket_apply_remote(order=order, remote=remote, now=now)
    status = BROKER_STATUS.get(str(remote.status).lower(), None)
    if remote.filled_qty and remote.filled_qty > order.filled_qty:
        _new_fills_apply(order, remote, now)
        order.refresh_from_db()
    if status and status != order.status and status not in (OrderStatus.PARTIALLY_FILLED,):
        if status == OrderStatus.FILLED and order.filled_qty < order.qty:
            return order  # fills not known yet; the next sync brings them
        order_advance(order, status, cause=f"broker reports {remote.status}", at=now)
        if status in (OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED):
            order_dead(order, now)
    return order


def _new_fills_apply(order: Order, remote, now: datetime) -> None:
    """The executions a report adds to what the ledger holds, priced and booked under the
    order's row lock: a stream event and a poll of the same order racing each other (each with
    a row read before the other's fill) price only what is new, and the fee (the cost model's,
    in `fill_apply`) charges the per-order commission once."""
    from trading.services.trades import fill_apply

    with sending_atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if not remote.filled_qty > order.filled_qty:
            return  # the other path booked it meanwhile
        delta = remote.filled_qty - order.filled_qty
        price = remote.avg_fill_price or remote.last_fill_price or order.price or Decimal("0")
        if remote.avg_fill_price and order.filled_qty and order.avg_fill_price:
            # the broker reports the average of ALL executions: price only the new ones
            total = Decimal(remote.avg_fill_price) * remote.filled_qty
            price = (total - order.avg_fill_price * order.filled_qty) / delta
        fill_apply(
            order=order,
            qty=delta,
            price=Decimal(str(price)),
            ts=now,
            broker_fill_id=f"{remote.id}-{remote.filled_qty}",
        )


def _bracket_apply_remote(*, order: Order, remote, now: datetime) -> Order:
    """A Tradier OTOCO reports its legs: leg 0 is our entry row, legs 1-2 our children (in
    creation order); an OCO pair (resting targets) likewise: leg 0 the stop (our head row,
    which keeps the leg's id for stop moves), leg 1 the limit. Link the legs' broker ids, then
    apply each leg (leg 0 first)."""
    from trading.orm_ledger import pair_legs_link

    if order.order_class == OrderClass.OCO:
        pair_legs_link(order, remote.legs)
    children = list(order.children.order_by("id"))
    for child, leg in zip(children, remote.legs[1:], strict=False):
        if leg.id and not child.broker_order_id:
            child.broker_order_id = leg.id
            child.save(update_fields=["broker_order_id", "updated_at"])
    order_apply_remote(order=order, remote=remote.legs[0], now=now)
    for child, leg in zip(children, remote.legs[1:], strict=False):
        child.refresh_from_db()
        order_apply_remote(order=child, remote=leg, now=now)
    order.refresh_from_db()
    return order
