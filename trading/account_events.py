"""Tradier account events → the ledger, through the same apply path as a poll.

An order event (Tradier "Account Streaming Responses") carries `id, event, status, type, price,
stop_price, avg_fill_price, exec_quantity, last_fill_quantity, remaining_quantity,
transaction_date, create_date, account` and, when present, `tag` and `parent_id`: no symbol,
no side. So an event is matched to its ledger row by broker order id, turned into the
`BrokerOrder` a GET would have produced, and handed to the poll's apply function
(`trading.services.order_apply_remote` today) with the broker's `transaction_date` as the time:
fills come from `exec_quantity` deltas (fill id `<order id>-<exec_quantity>`, so a replay or
the poll seeing the same execution records nothing twice) and land at the broker's time.

An event that arrives before our submit has recorded the broker's id (a marketable order
filled within its own POST) is found by its `tag` (the send lock waits for the sender to record
the broker's id).
A protective stop the broker kills after accepting it is handled at once
(`trading.protection_guard`: one re-protect, then flatten + alert + REDUCING).
Events the ledger cannot place directly are settled by one GET of the order they belong to:
a multi-leg parent (its legs must be applied together), or a leg we have not linked yet (found
through `parent_id`). Anything else is counted as unmatched and left to reconciliation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from autotrader_site.metrics import ACCOUNT_STREAM_EVENTS_TOTAL
from trading.after_commit import atomic as sending_atomic
from trading.brokers.base import BrokerOrder
from trading.orm_ledger import send_wait
from trading.protection_guard import protection_check

log = logging.getLogger(__name__)
RECHECK_PENDING_SEC = 30.0


@dataclass(frozen=True)
class OrderEvent:
    id: str
    status: str
    order_type: str
    price: Decimal | None
    stop_price: Decimal | None
    avg_fill_price: Decimal | None
    exec_quantity: int
    last_fill_quantity: int
    remaining_quantity: int
    transaction_date: datetime
    tag: str = ""
    parent_id: str = ""
    raw: dict | None = None

    def as_broker_order(self) -> BrokerOrder:
        """The event as the poll's `broker.order(id)` would report it."""
        return BrokerOrder(
            id=self.id,
            status=self.status,
            order_type=self.order_type,
            tag=self.tag,
            filled_qty=self.exec_quantity,
            avg_fill_price=self.avg_fill_price or None,
            price=self.price or None,
            stop=self.stop_price or None,
            raw=self.raw or {},
        )


def _dec(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _qty(value) -> int:
    number = _dec(value)
    return int(number) if number is not None and number > 0 else 0


def _when(value) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def parse_event(message: dict, *, now: datetime) -> OrderEvent | None:
    """An order event from one decoded message; None for heartbeats and anything malformed
    (logged). `now` stands in for a missing or unreadable transaction_date."""
    if not isinstance(message, dict) or message.get("event") != "order":
        return None
    order_id = message.get("id")
    status = message.get("status")
    if order_id in (None, "") or not isinstance(status, str):
        log.warning("account event without id/status skipped: %r", message)
        return None
    # The older documentation page names the field executed_quantity; the examples use
    # exec_quantity. Either is read.
    executed = message.get("exec_quantity", message.get("executed_quantity"))
    return OrderEvent(
        id=str(order_id),
        status=status.lower(),
        order_type=str(message.get("type") or ""),
        price=_dec(message.get("price")),
        stop_price=_dec(message.get("stop_price")),
        avg_fill_price=_dec(message.get("avg_fill_price")),
        exec_quantity=_qty(executed),
        last_fill_quantity=_qty(message.get("last_fill_quantity")),
        remaining_quantity=_qty(message.get("remaining_quantity")),
        transaction_date=_when(message.get("transaction_date")) or now,
        tag=str(message.get("tag") or ""),
        parent_id=str(message.get("parent_id") or ""),
        raw=message,
    )


def _default_apply(*, order, remote, now):
    from trading.services import order_apply_remote

    return order_apply_remote(order=order, remote=remote, now=now)


def _default_sync(*, order, now):
    from trading.services import order_sync

    return order_sync(order=order, now=now)


def event_apply(
    event: OrderEvent,
    *,
    broker_name: str = "tradier",
    apply: Callable | None = None,
    sync: Callable | None = None,
) -> str:
    """Apply one order event; returns what happened: applied, synced, unmatched."""
    from trading.models import Order

    apply = apply or _default_apply
    sync = sync or _default_sync
    rows = Order.objects.filter(broker=broker_name)
    with sending_atomic():  # a stop placed by a fill is sent once the event has committed
        order = rows.select_for_update().filter(broker_order_id=event.id).first()
        if order is None and event.tag and not event.parent_id:
            # A fast fill can be reported before our submit recorded the broker's id: the
            # tag finds the row; the send lock waits for the sender to record that id, and
            # only then the row is locked and read.
            pk = rows.filter(tag=event.tag, parent__isnull=True).values_list("pk", flat=True)
            pk = pk.first()
            if pk is not None:
                send_wait(pk)
                order = rows.select_for_update().filter(pk=pk).first()
            if order is not None and order.broker_order_id != event.id:
                order = None  # another order of ours carries that tag: not this one
        applied = order is not None and not order.children.exists()
        if applied:
            apply(order=order, remote=event.as_broker_order(), now=event.transaction_date)
    if applied:
        ACCOUNT_STREAM_EVENTS_TOTAL.labels(kind="order").inc()
        protection_check(order=order, now=event.transaction_date)
        return "applied"
    parent = order
    if parent is None and event.parent_id:
        parent = rows.filter(broker_order_id=event.parent_id, parent__isnull=True).first()
    if parent is None:
        ACCOUNT_STREAM_EVENTS_TOTAL.labels(kind="unmatched").inc()
        log.info(
            "account event for unknown order %s (%s) left to reconciliation", event.id, event.status
        )
        return "unmatched"
    sync(order=parent, now=event.transaction_date)
    ACCOUNT_STREAM_EVENTS_TOTAL.labels(kind="order").inc()
    for child in parent.children.all():
        protection_check(order=child, now=event.transaction_date)
    return "synced"


def unconfirmed_sync(
    *, broker, older_than_sec: float, limit: int = 20, sync: Callable | None = None
) -> int:
    """Confirm orders the broker accepted (200) but nobody has confirmed since: still
    `submitted` after `older_than_sec` (no stream event moved them) → one GET each through the
    poll path. Tradier may reject after a 200; this bounds how long that can go unseen. Multi-leg
    parents are read as a whole; their legs are confirmed with them. Returns orders read."""
    from datetime import timedelta

    from django.utils import timezone

    from trading.models import Order, OrderStatus

    sync = sync or _default_sync
    cutoff = timezone.now() - timedelta(seconds=older_than_sec)
    rows = (
        Order.objects.filter(
            broker=broker.name, status=OrderStatus.SUBMITTED, updated_at__lt=cutoff
        )
        .exclude(broker_order_id="")
        .order_by("updated_at")[:limit]
    )
    done = 0
    for order in rows:
        target = order.parent if order.parent_id else order
        sync(order=target, now=clock_now())
        protection_check(order=order, now=clock_now())
        done += 1
        # still "pending" at the broker (e.g. outside market hours): look again in a while,
        # not at every round (updated_at is moved ahead; .update() skips auto_now)
        Order.objects.filter(pk=order.pk, status=OrderStatus.SUBMITTED).update(
            updated_at=timezone.now() + timedelta(seconds=RECHECK_PENDING_SEC)
        )
    return done


def clock_now() -> datetime:
    from autotrader_site.clock import clock

    return clock.now()
