"""Resume an approved entry whose attempt died before the broker had it (reliability finding 5).

A worker killed between the decision's commit (signal `approved`, entry row `new`) and the
broker's answer leaves an entry nobody sends: still `new` (killed before the claim), or
claimed (`submitted`, no broker id: killed between the claim and the answer, the POST maybe
made). Reconciliation used to cancel it and the trade was lost. The one rule, called by the
bar task's retry, the single-signal path, the beat's scan and reconciliation alike:

- only an entry whose row nobody wrote for ENTRY_RESUME_LEASE_SEC (wall time) is taken, and
  only while no live attempt holds its send lock (the session advisory lock `order_submit`
  holds from before the claim to the recorded answer; it dies with a killed connection). The
  lock is tried, never waited for: one resumer at a time;
- its tag is looked up at the broker: found -> linked (submitted), never sent again. A claimed
  entry's POST may still be in flight and land late (finding 7; the fault suite's fake Tradier
  books such a POST `late_landing_sec` after it arrived): its tag is looked up again over the
  broker's settle window (TRADIER_SUBMIT_SETTLE_SEC) before it may be sent;
- not found, and its bar closed at most SIGNAL_MAX_DELAY_SEC ago (market time) -> sent with
  the SAME row and tag (never a second order for one signal); older -> cancelled, the signal
  `failed` with SIGNAL_STALE;
- while trading is HALTED or REDUCING nothing is sent (the entry waits, or goes stale).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from risk.config import RiskConfig
from strategies.models import Book
from trading.after_commit import atomic as sending_atomic
from trading.brokers import broker_get
from trading.brokers.base import BrokerError
from trading.core import lifecycle
from trading.models import Order, OrderEvent, OrderRole, OrderStatus
from trading.orm_ledger import SEND_LOCK_NS, OrmLedger, broker_order_by_tag, children_close
from trading.services.orders import order_apply_remote, order_dead, order_submit
from trading.state_machine import order_advance

log = logging.getLogger(__name__)
BAR = timedelta(minutes=1)
STALE_CODE = "SIGNAL_STALE"


def resumable(*, wall_now: datetime | None = None, signal_ids=None):
    """Approved signals' entries the broker never answered (`new`, or claimed with no broker
    id) whose row was last written a lease ago."""
    wall_now = wall_now or timezone.now()
    lease = timedelta(seconds=settings.ENTRY_RESUME_LEASE_SEC)
    rows = Order.objects.filter(
        role=OrderRole.ENTRY,
        status__in=(OrderStatus.NEW, OrderStatus.SUBMITTED),
        broker_order_id="",
        parent__isnull=True,
        signal__outcome="approved",
        updated_at__lte=wall_now - lease,
    )
    if signal_ids is not None:
        rows = rows.filter(signal_id__in=list(signal_ids))
    return rows.order_by("pk")


def entries_resume(
    *, now: datetime, broker=None, wall_now: datetime | None = None, signal_ids=None
) -> dict:
    """Resume every resumable entry (see the module); returns counts by what was done."""
    done: Counter = Counter()
    for pk in list(
        resumable(wall_now=wall_now, signal_ids=signal_ids).values_list("pk", flat=True)[:200]
    ):
        done[entry_resume(pk, now=now, broker=broker, wall_now=wall_now)] += 1
    return dict(done)


def entry_resume(order_pk: int, *, now: datetime, broker=None, wall_now=None) -> str:
    """Resume one entry. Returns linked / sent / resent (a claimed one) / stale / held /
    unreachable, or busy (another resumer or a live attempt has it) / done (nothing left)."""
    with _try_send_lock(order_pk) as mine:
        if not mine:
            return "busy"
        if not resumable(wall_now=wall_now).filter(pk=order_pk).exists():
            return "done"  # sent, cancelled or touched meanwhile
        order = Order.objects.select_related("signal", "trade").get(pk=order_pk)
        broker = _broker_of(order, broker)
        if broker is None:
            return "done"  # another broker's order (a configuration change): not ours
        claimed = order.status == OrderStatus.SUBMITTED
        try:
            remote = _at_broker(broker, order.tag, settle=claimed)
        except BrokerError as exc:
            log.warning("entry %s: tag look-up failed (%s); resumed later", order.tag, exc)
            return "unreachable"
        signal = order.signal
        if remote is not None:
            _link(order, remote, now)
            return "linked"
        age = (now - (signal.bar_ts + BAR)).total_seconds()
        if age > settings.SIGNAL_MAX_DELAY_SEC:
            _stale(order, age, now)
            return "stale"
        if _halted():
            return "held"
        log.warning("entry %s: its attempt died before the broker had it; sending it", order.tag)
        ledger = OrmLedger(broker, book=order.book)
        config = RiskConfig.from_settings()
        if not claimed:
            _resumed(order, now, "resumed: its attempt died before sending it")
            lifecycle.entry_send(ledger, _candidate(signal), order.trade, now=now, config=config)
            return "sent"
        sent = order_submit(order=order, now=now, broker=broker, resend=True)
        lifecycle.entry_outcome(
            ledger, _candidate(signal), order.trade, sent, now=now, config=config
        )
        return "resent"


@contextmanager
def _try_send_lock(order_pk: int):
    """The order's session advisory send lock if free (order_submit takes it again, nested)."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [SEND_LOCK_NS, order_pk])
        mine = cursor.fetchone()[0]
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [SEND_LOCK_NS, order_pk])


def _broker_of(order: Order, broker):
    if order.book == Book.PAPER:
        from trading.paper_book import paper_book_broker

        return paper_book_broker()
    broker = broker or broker_get()
    return broker if broker.name == order.broker else None


def _at_broker(broker, tag: str, *, settle: bool):
    """The broker's order carrying `tag`, or None. A `new` row was never claimed, so never
    POSTed by `order_submit` (the claim commits before the call): one look-up. A claimed one
    may have been POSTed just before its worker died: looked up again every 0.5 s over the
    broker's settle window (`settle_sec`, TRADIER_SUBMIT_SETTLE_SEC for Tradier) first."""
    found = broker_order_by_tag(broker, tag)
    window = float(getattr(broker, "settle_sec", 0.0) or 0.0) if settle else 0.0
    sleep = getattr(broker, "sleep", time.sleep)
    waited = 0.0
    while found is None and waited < window:
        step = min(0.5, window - waited)
        sleep(step)
        waited += step
        found = broker_order_by_tag(broker, tag)
    return found


def _link(order: Order, remote, now: datetime) -> None:
    from trading.reconciliation import bracket_legs_link

    with sending_atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status not in (OrderStatus.NEW, OrderStatus.SUBMITTED) or order.broker_order_id:
            return
        order.broker_order_id = remote.id
        order.response_payload = remote.raw or {}
        order.save(update_fields=["broker_order_id", "response_payload", "updated_at"])
        if remote.legs:
            bracket_legs_link(order, remote)
        if order.status == OrderStatus.NEW:
            order_advance(order, OrderStatus.SUBMITTED, cause="resumed: found at broker", at=now)
        else:
            _resumed(order, now, "resumed: found at broker")
        order_apply_remote(order=order, remote=remote, now=now)
        message = f"entry {order.tag} found at the broker"
        _outcome(order.signal, "submitted", "ORDER_FOUND", True, message)


def _resumed(order: Order, now: datetime, cause: str) -> None:
    OrderEvent.objects.create(
        order=order, from_status=order.status, to_status=order.status, cause=cause, at=now
    )


def _stale(order: Order, age: float, now: datetime) -> None:
    with sending_atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status not in (OrderStatus.NEW, OrderStatus.SUBMITTED) or order.broker_order_id:
            return
        order_advance(order, OrderStatus.CANCELLED, cause="never sent: signal stale", at=now)
        children_close(order, OrderStatus.CANCELLED, now, "parent never sent")
        order_dead(order, now)
        message = (
            f"entry never sent; found {age:.0f} s after its bar closed "
            f"(SIGNAL_MAX_DELAY_SEC {settings.SIGNAL_MAX_DELAY_SEC})"
        )
        _outcome(order.signal, "failed", STALE_CODE, False, message)
        log.warning("entry %s cancelled: %s", order.tag, message)


def _outcome(signal, outcome: str, code: str, passed: bool, message: str) -> None:
    from strategies import services as strategy_services

    check = {"stage": "trading", "code": code, "passed": passed, "message": message}
    strategy_services.signal_outcome_set(signal=signal, outcome=outcome, checks=[check])


def _halted() -> bool:
    """HALTED or REDUCING — except the start-up reconciliation's own halt of a trading state."""
    from risk.selectors import trading_state_get
    from trading.reconciliation import STARTUP_REASON

    state = trading_state_get()
    if state.state not in ("HALTED", "REDUCING"):
        return False
    return not (state.reason.startswith(STARTUP_REASON) and "(was ACTIVE)" in state.reason)


def _candidate(signal):
    """The signal as the lifecycle's candidate, built as the decision built it
    (`trading.pipeline.candidate_of`; imported here, the pipeline imports this module)."""
    from trading.pipeline import candidate_of

    return candidate_of(signal)
