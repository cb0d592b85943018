"""Reconciliation: the broker is the truth for what exists; the ledger is brought in line.

- a broker order we know (by broker id, or by tag after a crash between the broker's answer
  and our commit) → its status and fills are applied through the state machine;
- a broker order we do not know → adopted as role `external` (never re-sent);
- a working ledger order the broker no longer has → closed (expired), and a `new` order that
  never reached the broker → a protective stop is re-sent, an approved signal's entry resumed
  (`trading.services.entry_resume`: sent, linked or cancelled as stale), anything else
  cancelled;
- positions: the ledger's net quantity is corrected to the broker's.
At worker start trading is HALTED until the start-up reconciliation succeeds (fail closed).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.core.cache import cache

from autotrader_site.clock import clock
from autotrader_site.metrics import (
    ACTIVE_TRADES,
    RECONCILE_LAST_SUCCESS,
    RECONCILE_TOTAL,
    TRADING_HALTED,
)
from strategies.models import Book
from trading import services
from trading.after_commit import atomic as sending_atomic
from trading.brokers import broker_get
from trading.brokers.base import BrokerError, OrderNotFound
from trading.models import WORKING_STATUSES, Order, OrderRole, OrderStatus, Position
from trading.orm_ledger import send_in_flight
from trading.selectors import RECONCILE_CACHE_KEY
from trading.services.entry_resume import entries_resume
from trading.state_machine import BROKER_STATUS, order_advance

log = logging.getLogger(__name__)
STARTUP_REASON = "startup: awaiting reconciliation"


def _adopt(remote, now: datetime, broker_name: str) -> Order:
    tag = remote.tag if remote.tag and not Order.objects.filter(tag=remote.tag).exists() else ""
    order = Order.objects.create(
        tag=tag or f"ext-{broker_name}-{remote.id}",
        broker=broker_name,
        broker_order_id=remote.id,
        role=OrderRole.EXTERNAL,
        symbol=remote.symbol or "?",
        side=remote.side or "buy",
        qty=max(int(remote.qty or 0), 1),
        order_type=remote.order_type
        if remote.order_type in ("market", "limit", "stop", "stop_limit")
        else "market",
        order_class=remote.order_class
        if remote.order_class in ("equity", "oco", "oto", "otoco")
        else "equity",
        price=remote.price,
        stop_price=remote.stop,
        response_payload=remote.raw or {},
        created_at=now,
    )
    from trading.models import OrderEvent

    OrderEvent.objects.create(
        order=order, from_status="", to_status="new", cause="adopted from broker", at=now
    )
    order_advance(order, OrderStatus.SUBMITTED, cause="adopted from broker", at=now)
    return order


def _match(remote, broker_name: str) -> Order | None:
    account = Order.objects.filter(book=Book.ACCOUNT)  # the paper book is never reconciled
    order = account.filter(broker=broker_name, broker_order_id=remote.id).first()
    if order is None and remote.tag:
        order = account.filter(tag=remote.tag).first()
        if order is not None and not order.broker_order_id:
            order.broker_order_id = remote.id
            order.response_payload = remote.raw or {}
            order.save(update_fields=["broker_order_id", "response_payload", "updated_at"])
    return order


def bracket_legs_link(parent: Order, remote) -> None:
    """Tradier reports a bracket as one order with a `leg` list: leg 0 is the entry (our parent
    row), the others are our child rows in creation order."""
    children = list(parent.children.order_by("id"))
    legs = remote.legs[1:] if len(remote.legs) == len(children) + 1 else remote.legs
    for child, leg in zip(children, legs, strict=False):
        if leg.id and not child.broker_order_id:
            child.broker_order_id = leg.id
            child.save(update_fields=["broker_order_id", "updated_at"])


def _reportable(remote, local):
    """(report, applies-to) pairs: a bracket's entry state is its leg 0, not the envelope."""
    if local is not None and local.order_class == "otoco" and len(remote.legs) == 3:
        entry = remote.legs[0]
        entry.tag = entry.tag or remote.tag
        entry.id = entry.id or remote.id
        return [_Report(remote.legs[0], local), *[_Report(leg, None) for leg in remote.legs[1:]]]
    return [_Report(remote, None), *[_Report(leg, None) for leg in remote.legs]]


class _Report:
    def __init__(self, item, order):
        self.item, self.order = item, order


def _orders_reconcile(broker, now: datetime, summary: dict) -> None:
    """Each correction in its own transaction: one that fails (a killed connection) never
    rolls back another whose broker side already happened, and a stop it re-places is sent
    once it has committed (`trading.after_commit`)."""
    remote_orders = broker.orders()
    seen_ids = set()
    for remote in remote_orders:
        with sending_atomic():
            _remote_apply(remote, broker, now, summary, seen_ids)
    parents_read: set[int] = set()
    for pk in Order.objects.filter(
        broker=broker.name, book=Book.ACCOUNT, status__in=WORKING_STATUSES
    ).values_list("pk", flat=True):
        with sending_atomic():
            order = Order.objects.filter(pk=pk, status__in=WORKING_STATUSES).first()
            if order is not None:
                _local_settle(order, broker, now, summary, seen_ids, parents_read)


def _remote_apply(remote, broker, now: datetime, summary: dict, seen_ids: set) -> None:
    local = _match(remote, broker.name)
    if local is not None and local.order_class in ("otoco", "oco") and remote.legs:
        bracket_legs_link(local, remote)
    seen_ids.add(remote.id)
    for report in _reportable(remote, local):
        item = report.item
        if not item.id:
            continue
        seen_ids.add(item.id)
        order = report.order or _match(item, broker.name)
        if order is None:
            if item is not remote:
                continue  # a leg of an order we adopt as a whole
            if BROKER_STATUS.get(str(item.status).lower()) in WORKING_STATUSES or (item.filled_qty):
                order = _adopt(item, now, broker.name)
                summary["adopted"].append(order.tag)
            else:
                continue
        before = (order.status, order.filled_qty)
        if order.status == OrderStatus.NEW and item.status:
            order_advance(order, OrderStatus.SUBMITTED, cause="found at broker by tag", at=now)
        services.order_apply_remote(order=order, remote=item, now=now)
        order.refresh_from_db()
        if (order.status, order.filled_qty) != before:
            summary["updated"].append(order.tag)


def _local_settle(
    order: Order, broker, now: datetime, summary: dict, seen_ids: set, parents_read: set
) -> None:
    """A working ledger order the broker's list did not show."""
    if order.broker_order_id and order.broker_order_id in seen_ids:
        return
    if order.parent_id and order.parent.broker_order_id:
        # a leg is judged with its order (an OCO pair or bracket placed after the listing
        # was read): one GET of the parent applies every leg; the leg's own id is unknown
        # to Tradier's GET, and an unlinked leg never "failed to reach the broker"
        parent = order.parent
        if parent.pk in parents_read or parent.broker_order_id in seen_ids:
            return
        parents_read.add(parent.pk)
        try:
            remote = broker.order(parent.broker_order_id)
        except OrderNotFound:
            return  # the parent's own turn (or the next run) settles it
        services.order_apply_remote(order=parent, remote=remote, now=now)
        return
    if order.broker_order_id:
        try:
            remote = broker.order(order.broker_order_id)
        except OrderNotFound:
            order_advance(order, OrderStatus.EXPIRED, cause="vanished at broker", at=now)
            summary["closed"].append(order.tag)
            return
        services.order_apply_remote(order=order, remote=remote, now=now)
        return
    if order.status == OrderStatus.NEW and order.parent_id:
        return  # a bracket leg waits for its parent
    if order.role == OrderRole.ENTRY and order.signal_id and order.signal.outcome == "approved":
        return  # its attempt may have died before sending it: entries_resume decides
    if not _unlocked(order):
        return  # another worker is sending it right now (it holds the send lock)
    # Never reached the broker (its tag is unknown there).
    if order.role == OrderRole.STOP and order.trade_id:
        order_advance(order, OrderStatus.CANCELLED, cause="never reached broker", at=now)
        services.trade_protect(trade=order.trade, now=now, broker=broker)
        summary["resent"].append(order.tag)
    else:
        order_advance(order, OrderStatus.CANCELLED, cause="never reached broker", at=now)
        services.children_close(order, OrderStatus.CANCELLED, now, "parent never sent")
        services.order_dead(order, now)
        summary["closed"].append(order.tag)


def _unlocked(order: Order) -> bool:
    """Lock the row unless a live worker holds it or is sending the order (order_submit holds
    the send lock from its claim until the broker's answer is recorded)."""
    rows = (
        Order.objects.select_for_update(skip_locked=True)
        .filter(pk=order.pk, status=order.status)
        .values_list("pk", flat=True)
    )
    return bool(list(rows[:1])) and not send_in_flight(order.pk)


def _positions_reconcile(broker, summary: dict) -> None:
    remote = {p.symbol: p for p in broker.positions()}
    local = {p.symbol: p for p in Position.objects.filter(book=Book.ACCOUNT)}
    for symbol in set(remote) | set(local):
        want = remote[symbol].qty if symbol in remote else 0
        have = local[symbol].qty if symbol in local else 0
        if want == have:
            continue
        position = local.get(symbol) or Position(symbol=symbol)
        position.qty = want
        if symbol in remote and want:
            position.avg_price = (Decimal(remote[symbol].cost_basis) / want).quantize(
                Decimal("0.0001")
            )
        position.save()
        summary["positions"].append(f"{symbol}: {have} -> {want}")
        log.warning("reconciliation: position %s corrected %s -> %s", symbol, have, want)


def reconcile_run(*, now: datetime | None = None, startup: bool = False, broker=None) -> dict:
    """Compare broker orders, fills and positions with the ledger and correct the ledger.
    Records the result for the health endpoint. Never raises: a failure is the result."""
    now = now or clock.now()
    broker = broker or broker_get()
    summary = {"adopted": [], "updated": [], "closed": [], "resent": [], "positions": []}
    ok, error = True, ""
    try:
        _orders_reconcile(broker, now, summary)
        summary["resumed"] = entries_resume(now=now, broker=broker)
        with sending_atomic():
            _positions_reconcile(broker, summary)
        summary["journal"] = signals_follow_ledger()
    except (BrokerError, Exception) as exc:  # noqa: BLE001 - the result records it
        ok, error = False, f"{type(exc).__name__}: {exc}"
        log.exception("reconciliation failed")
    result = {
        "at": now.isoformat(),
        "ok": ok,
        "startup": startup,
        "broker": broker.name,
        "error": error,
        "summary": {k: v for k, v in summary.items()},
    }
    cache.set(RECONCILE_CACHE_KEY, result, timeout=None)
    RECONCILE_TOTAL.labels(result="ok" if ok else "error").inc()
    _gauges_refresh()
    if ok:
        RECONCILE_LAST_SUCCESS.set(now.timestamp())
    return result


def signals_follow_ledger() -> list[str]:
    """The journal follows the ledger: a signal left `approved` (the process died between the
    decision and recording the send) gets the outcome its entry order tells — `submitted` once
    the order reached the broker, `failed` when it ended without ever reaching it. An entry
    still `new` and unsent is in flight (or the retry will send it): left as it is. Returns
    "<signal id>:<outcome>" for each signal set."""
    from strategies.models import Signal
    from trading.pipeline import signal_outcome_set

    changed = []
    for signal in Signal.objects.filter(outcome="approved").order_by("pk")[:1000]:
        entries = list(Order.objects.filter(signal=signal, role=OrderRole.ENTRY).order_by("pk"))
        sent = [o for o in entries if o.broker_order_id and o.broker != "paper"]
        if sent:
            outcome, message = "submitted", f"entry {sent[-1].tag} reached the broker"
        elif any(o.broker == "paper" for o in entries):
            outcome, message = "dry_run", "paper entry recorded"
        elif entries and all(o.status not in WORKING_STATUSES for o in entries):
            outcome, message = "failed", "entry never reached the broker"
        else:
            continue
        check = {
            "stage": "reconciliation",
            "code": "LEDGER",
            "passed": outcome == "submitted",
            "message": message,
        }
        signal_outcome_set(signal=signal, outcome=outcome, checks=[check])
        changed.append(f"{signal.pk}:{outcome}")
    if changed:
        log.warning("journal follows the ledger: %s", ", ".join(changed))
    return changed


def _gauges_refresh() -> None:
    """Process-local gauges restated from the database (a restarted worker starts at 0)."""
    from risk.selectors import trading_state_get
    from trading.models import Trade, TradeStatus

    TRADING_HALTED.set(1 if trading_state_get().state == "HALTED" else 0)
    ACTIVE_TRADES.set(Trade.objects.filter(status=TradeStatus.OPEN, book=Book.ACCOUNT).count())


def startup_reconcile(*, broker=None) -> dict:
    """Fail closed: HALT (remembering the state it replaces), reconcile, and only restore that
    state when the reconciliation succeeded."""
    from risk.selectors import trading_state_get
    from risk.services import trading_state_set

    state = trading_state_get()
    previous = state.state
    # the kill switch's halt lifts itself at the next open: while reconciling, the start-up
    # holds it without that lift (a failed reconciliation must not let trading resume)
    day_halt = (state.reason, state.resume_at, state.resume_state) if state.resume_at else None
    if previous != "HALTED" or day_halt:
        trading_state_set(
            state="HALTED", reason=f"{STARTUP_REASON} (was {previous})", actor="startup"
        )
    result = reconcile_run(startup=True, broker=broker)
    current = trading_state_get()
    if result["ok"] and current.reason.startswith(STARTUP_REASON):
        restore = "ACTIVE"
        if "(was " in current.reason:
            restore = current.reason.rsplit("(was ", 1)[1].rstrip(")") or "ACTIVE"
        if day_halt and restore == "HALTED":  # back to the day's halt, its lift included
            reason, resume_at, resume_state = day_halt
            trading_state_set(state="HALTED", reason=reason, actor="startup",
                              resume_at=resume_at, resume_state=resume_state)  # fmt: skip
        else:
            trading_state_set(
                state=restore, reason="startup reconciliation succeeded", actor="startup"
            )
    return result
