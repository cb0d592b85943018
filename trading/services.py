"""Writes of the trading stage: orders through the broker and the state machine, fills into
the ledger (positions, trades, P&L), protective stops, cancels, flatten, brackets.

Safety rules every function here keeps:
- an order row (with its idempotency tag) is committed BEFORE the broker is called, so a crash
  after the broker's answer is found again by its tag at reconciliation, never sent twice;
- an open trade always has a working protective stop for its remaining quantity; exits cancel
  or shrink that stop first and never sell more than the trade holds;
- only one exit order per trade is working at a time (a trade is never exited twice).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction

from autotrader_site.clock import clock
from autotrader_site.metrics import ACTIVE_TRADES, DECISION_TO_ACK_SECONDS
from risk.config import RiskConfig, SymbolParams
from risk.selectors import symbol_params_get
from risk.types import Decision, Intent
from trading.brokers import broker_get
from trading.brokers.base import (
    Broker,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    Leg,
    OrderRequest,
)
from trading.entry_rules import bracket_levels, entry_plan  # noqa: F401 - re-exported
from trading.models import (
    WORKING_STATUSES,
    AuditEvent,
    Fill,
    Order,
    OrderClass,
    OrderEvent,
    OrderRole,
    OrderStatus,
    OrderType,
    Position,
    Trade,
    TradeStatus,
)
from trading.selectors import PROTECTIVE_ROLES, open_trades, trade_orders, working_orders
from trading.state_machine import BROKER_STATUS, order_advance, order_transition

log = logging.getLogger(__name__)
CENT = Decimal("0.01")
EXIT_ROLES = (OrderRole.EXIT, OrderRole.FLATTEN)


def _q(value: Decimal | float | str | None) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


# --- orders ------------------------------------------------------------------------------------
def _request_of(order: Order) -> OrderRequest:
    legs = tuple(
        Leg(
            symbol=leg["symbol"],
            side=leg["side"],
            qty=int(leg["qty"]),
            order_type=leg["order_type"],
            price=_q(leg.get("price")),
            stop=_q(leg.get("stop")),
        )
        for leg in order.legs or ()
    )
    return OrderRequest(
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        order_type=order.order_type,
        tag=order.tag,
        price=order.price,
        stop=order.stop_price,
        duration=order.duration,
        order_class=order.order_class,
        legs=legs,
    )


def order_create(
    *,
    symbol: str,
    side: str,
    qty: int,
    order_type: str,
    role: str,
    tag: str,
    now: datetime,
    price: Decimal | None = None,
    stop: Decimal | None = None,
    trade: Trade | None = None,
    signal=None,
    parent: Order | None = None,
    order_class: str = OrderClass.EQUITY,
    legs: list[dict] | None = None,
    broker: Broker | None = None,
) -> Order:
    """A new order row (status new). Nothing is sent yet."""
    broker = broker or broker_get()
    order = Order.objects.create(
        tag=tag,
        broker=broker.name,
        symbol=symbol.upper(),
        side=side,
        qty=int(qty),
        order_type=order_type,
        order_class=order_class,
        price=_q(price),
        stop_price=_q(stop),
        legs=legs or [],
        role=role,
        trade=trade,
        signal=signal,
        parent=parent,
        created_at=now,
    )
    OrderEvent.objects.create(
        order=order, from_status="", to_status=order.status, cause=f"created ({role})", at=now
    )
    return order


def _unique_tag(base: str) -> str:
    """`base`, or `base-2`, `base-3`... when taken (a replacement order of the same plan)."""
    if not Order.objects.filter(tag=base).exists():
        return base
    n = 2
    while Order.objects.filter(tag=f"{base}-{n}").exists():
        n += 1
    return f"{base}-{n}"


def order_submit(
    *, order: Order, now: datetime | None = None, broker: Broker | None = None
) -> Order:
    """Send a `new` order to the broker and record the answer through the state machine.

    Rejected → rejected (reason kept). Unknown outcome (timeouts/5xx after the broker client
    looked the tag up) → submitted with that cause; reconciliation settles it by tag.
    """
    broker = broker or broker_get()
    now = now or clock.now()
    with transaction.atomic():
        # The row lock marks the order as in flight until our answer is recorded: the
        # reconciliation of another worker skips locked rows instead of settling them.
        locked = Order.objects.select_for_update().filter(pk=order.pk).first()
        if locked is None or locked.status != OrderStatus.NEW:
            order.refresh_from_db()
            return order
        return _order_send(order=locked, now=now, broker=broker)


def _order_send(*, order: Order, now: datetime, broker: Broker) -> Order:
    request = _request_of(order)
    order.request_payload = _payload_of(request, broker)
    order.save(update_fields=["request_payload", "updated_at"])
    started = clock.now()
    try:
        ack = broker.submit(request)
    except BrokerRejected as exc:
        order.reject_reason = str(exc)[:255]
        order.save(update_fields=["reject_reason", "updated_at"])
        order_transition(order, OrderStatus.REJECTED, cause=f"rejected: {exc}", at=now)
        _children_close(order, OrderStatus.REJECTED, now, "parent rejected")
        return order
    except BrokerUnavailable as exc:
        order_transition(
            order,
            OrderStatus.SUBMITTED,
            cause=f"outcome unknown ({exc}); reconciliation settles by tag",
            at=now,
        )
        return order
    DECISION_TO_ACK_SECONDS.observe(max(0.0, (clock.now() - started).total_seconds()))
    order.broker_order_id = ack.id
    order.response_payload = ack.raw or {"id": ack.id, "status": ack.status}
    order.save(update_fields=["broker_order_id", "response_payload", "updated_at"])
    order_transition(order, OrderStatus.SUBMITTED, cause=f"accepted by {broker.name}", at=now)
    status = BROKER_STATUS.get(ack.status, OrderStatus.OPEN)
    if status != OrderStatus.SUBMITTED:
        order_advance(order, status, cause=f"broker status {ack.status}", at=now)
    children = list(order.children.order_by("id"))
    for child, leg in zip(children, ack.legs[1:] if len(ack.legs) == 3 else ack.legs, strict=False):
        if leg.id and not child.broker_order_id:
            child.broker_order_id = leg.id
            child.save(update_fields=["broker_order_id", "updated_at"])
    return order


def _payload_of(request: OrderRequest, broker: Broker) -> dict:
    """The form as Tradier would receive it (recorded for the paper broker too)."""
    from trading.brokers.tradier import order_form

    return order_form(request)


def _children_close(order: Order, status: str, now: datetime, cause: str) -> None:
    for child in order.children.filter(status__in=WORKING_STATUSES):
        order_advance(child, status, cause=cause, at=now)


def order_cancel(
    *, order: Order, now: datetime | None = None, cause: str = "cancel requested", broker=None
) -> Order:
    """Cancel a working order at the broker, then in the ledger. A protective stop of an open
    trade is re-placed by the exit manager's protection pass."""
    now = now or clock.now()
    order.refresh_from_db()
    if order.status not in WORKING_STATUSES:
        return order
    broker = broker or broker_get()
    if order.broker_order_id and order.status != OrderStatus.NEW:
        target = order.broker_order_id
        if order.parent_id and order.order_class in (OrderClass.OTOCO, OrderClass.OCO):
            # a bracket leg is cancelled through its bracket (the broker cancels open legs)
            target = order.parent.broker_order_id or target
        try:
            answer = broker.cancel(target)
        except BrokerError as exc:
            log.warning("cancel of %s failed: %s; syncing from broker", order.tag, exc)
            order_sync(order=order, now=now, broker=broker)
            return order
        status = BROKER_STATUS.get(answer.status, OrderStatus.CANCELLED)
        if status not in (OrderStatus.CANCELLED, OrderStatus.OPEN):
            order_sync(order=order, now=now, broker=broker)
            return order
        if broker.name != "paper" and not _cancel_confirmed(order, now, broker):
            return order
    order_advance(order, OrderStatus.CANCELLED, cause=cause, at=now)
    if order.parent_id is None:
        _children_close(order, OrderStatus.CANCELLED, now, "parent cancelled")
    if order.role == OrderRole.ENTRY and order.trade_id:
        trade = Trade.objects.get(pk=order.trade_id)
        if (
            trade.status == TradeStatus.PENDING
            and trade.remaining_qty == 0
            and not trade_orders(trade, roles=[OrderRole.ENTRY]).exists()
        ):
            _trade_close(trade, now, TradeStatus.CANCELLED, reason="entry_cancelled")
    return order


def _cancel_confirmed(order: Order, now: datetime, broker: Broker) -> bool:
    """A live cancel is only a request: read the order back. Filled meanwhile → the fill is
    applied and the cancel is not recorded; still working → left working (retried later)."""
    from trading.brokers.base import OrderNotFound

    try:
        remote = broker.order(order.broker_order_id)
    except OrderNotFound:
        return True  # a bracket leg the broker only reports inside its bracket
    except BrokerError as exc:
        log.warning("cancel of %s not confirmed (%s): left working", order.tag, exc)
        return False
    status = BROKER_STATUS.get(str(remote.status).lower())
    if (remote.filled_qty or 0) > order.filled_qty or status == OrderStatus.FILLED:
        order_apply_remote(order=order, remote=remote, now=now)
        return False
    if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
        return True
    log.warning("cancel of %s pending at the broker (%s)", order.tag, remote.status)
    return False


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
    """Apply a broker report: new fills first (through the ledger), then the status."""
    if order.order_class == OrderClass.OTOCO and order.parent_id is None and len(remote.legs) == 3:
        return _bracket_apply_remote(order=order, remote=remote, now=now)
    status = BROKER_STATUS.get(str(remote.status).lower(), None)
    if remote.filled_qty and remote.filled_qty > order.filled_qty:
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
        order.refresh_from_db()
    if status and status != order.status and status not in (OrderStatus.PARTIALLY_FILLED,):
        if status == OrderStatus.FILLED and order.filled_qty < order.qty:
            return order  # fills not known yet; the next sync brings them
        order_advance(order, status, cause=f"broker reports {remote.status}", at=now)
        if status in (OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED):
            _after_dead_order(order, now)
    return order


def _bracket_apply_remote(*, order: Order, remote, now: datetime) -> Order:
    """A Tradier OTOCO reports its legs: leg 0 is our entry row, legs 1-2 our children (in
    creation order). Link the legs' broker ids, then apply each leg (entry first)."""
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


def _after_dead_order(order: Order, now: datetime) -> None:
    """An order died at the broker: close a never-filled entry's trade."""
    if order.role == OrderRole.ENTRY and order.trade_id:
        trade = Trade.objects.get(pk=order.trade_id)
        if (
            trade.status == TradeStatus.PENDING
            and trade.remaining_qty == 0
            and not trade_orders(trade, roles=[OrderRole.ENTRY]).exists()
        ):
            _trade_close(trade, now, TradeStatus.CANCELLED, reason="entry_not_filled")


# --- fills and the ledger ----------------------------------------------------------------------
@transaction.atomic
def fill_apply(
    *,
    order: Order,
    qty: int,
    price: Decimal,
    ts: datetime,
    broker_fill_id: str,
    fee: Decimal = Decimal("0"),
) -> Fill | None:
    """Record one execution: the Fill row (once per broker fill id), the order's filled
    quantity, average price and status, the net position, and the managed trade."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    qty = min(int(qty), order.qty - order.filled_qty)
    if qty <= 0:
        return None
    price = _q(price)
    try:
        with transaction.atomic():
            fill = Fill.objects.create(
                order=order,
                broker_fill_id=broker_fill_id,
                symbol=order.symbol,
                side=order.side,
                qty=qty,
                price=price,
                fee=fee,
                ts=ts,
            )
    except IntegrityError:
        return None  # this broker fill was recorded already
    before = order.filled_qty
    order.filled_qty = before + qty
    previous_avg = order.avg_fill_price or Decimal("0")
    order.avg_fill_price = ((previous_avg * before + price * qty) / order.filled_qty).quantize(
        Decimal("0.0001")
    )
    status = OrderStatus.FILLED if order.filled_qty >= order.qty else OrderStatus.PARTIALLY_FILLED
    order_advance(order, status, cause=f"fill {qty} @ {price}", at=ts)
    if order.status != status:  # the state machine refused: keep the quantities consistent
        order.save(update_fields=["filled_qty", "avg_fill_price", "updated_at"])
    _position_apply(order.symbol, order.side, qty, price, fee)
    if order.trade_id:
        trade = Trade.objects.select_for_update().get(pk=order.trade_id)
        if order.side in ("buy", "buy_to_cover"):
            _trade_entry_filled(trade, order, qty, price, ts)
        else:
            _trade_exit_filled(trade, order, qty, price, ts)
    return fill


def _position_apply(symbol: str, side: str, qty: int, price: Decimal, fee: Decimal) -> None:
    position, _ = Position.objects.select_for_update().get_or_create(symbol=symbol)
    signed = qty if side in ("buy", "buy_to_cover") else -qty
    old_qty = position.qty
    new_qty = old_qty + signed
    if old_qty == 0 or (old_qty > 0) == (signed > 0):
        total = abs(old_qty) + abs(signed)
        position.avg_price = (position.avg_price * abs(old_qty) + price * abs(signed)) / total
    else:
        closed = min(abs(old_qty), abs(signed))
        direction = 1 if old_qty > 0 else -1
        position.realized_pnl += (price - position.avg_price) * closed * direction
        if abs(signed) > abs(old_qty):  # flipped through zero
            position.avg_price = price
        elif new_qty == 0:
            position.avg_price = Decimal("0")
    position.realized_pnl -= fee
    position.qty = new_qty
    position.avg_price = Decimal(position.avg_price).quantize(Decimal("0.0001"))
    if new_qty == 0:
        # Flat: the realized P&L is exactly the cash flows of every fill (no rounding of the
        # average price carried over).
        position.realized_pnl = _symbol_cash_flows(symbol)
    position.last_price = price
    position.save()


def _symbol_cash_flows(symbol: str) -> Decimal:
    total = Decimal("0")
    for side, qty, price, fee in Fill.objects.filter(symbol=symbol).values_list(
        "side", "qty", "price", "fee"
    ):
        total += (price * qty if side.startswith("sell") else -price * qty) - fee
    return total


def _trade_entry_filled(trade: Trade, order: Order, qty: int, price: Decimal, ts: datetime):
    held = trade.remaining_qty
    entry = trade.entry_price or Decimal("0")
    trade.entry_price = ((entry * held + price * qty) / (held + qty)).quantize(Decimal("0.0001"))
    trade.remaining_qty = held + qty
    if trade.status == TradeStatus.PENDING:
        trade.status = TradeStatus.OPEN
        trade.opened_at = ts
        trade.trail_high = price
    trade.save()
    ACTIVE_TRADES.set(open_trades().filter(status=TradeStatus.OPEN).count())
    if order.order_class == OrderClass.OTOCO:
        for child in order.children.filter(status=OrderStatus.NEW):
            # Tradier activates the bracket legs itself; the paper book does it here.
            order_transition(child, OrderStatus.SUBMITTED, cause="parent filled", at=ts)
            order_transition(child, OrderStatus.OPEN, cause="bracket leg active", at=ts)
        _bracket_resize(trade, ts)
    else:
        trade_protect(trade=trade, now=ts)


def _bracket_resize(trade: Trade, now: datetime) -> None:
    """Bracket legs cover the whole planned quantity; on a partial entry fill the paper book
    trims them so the legs never sell more than is held."""
    for leg in trade_orders(trade, roles=PROTECTIVE_ROLES):
        if leg.qty != trade.remaining_qty and leg.broker == "paper":
            leg.qty = trade.remaining_qty
            leg.save(update_fields=["qty", "updated_at"])


def _trade_exit_filled(trade: Trade, order: Order, qty: int, price: Decimal, ts: datetime):
    entry = trade.entry_price or price
    trade.realized_pnl += (price - entry) * qty
    trade.remaining_qty = max(0, trade.remaining_qty - qty)
    if order.role == OrderRole.TARGET_ONE:
        trade.partial_done = True
    trade.save()
    if trade.remaining_qty == 0:
        reason = trade.exit_reason or {
            OrderRole.STOP: "stop",
            OrderRole.TARGET_ONE: "target_one",
            OrderRole.TARGET_TWO: "target_two",
        }.get(order.role, order.role)
        for other in trade_orders(trade):
            if other.pk != order.pk:
                order_cancel(order=other, now=ts, cause="trade closed")
        _trade_close(trade, ts, TradeStatus.CLOSED, reason=reason)
    else:
        if order.role in (OrderRole.STOP, OrderRole.TARGET_ONE, OrderRole.TARGET_TWO):
            # One leg of an OCO pair filled partially or in part: keep the rest consistent.
            trade_protect(trade=trade, now=ts)


def _trade_close(trade: Trade, now: datetime, status: str, *, reason: str) -> None:
    trade.status = status
    trade.closed_at = now
    trade.exit_reason = trade.exit_reason or reason
    trade.save()
    ACTIVE_TRADES.set(open_trades().filter(status=TradeStatus.OPEN).count())


# --- protection ---------------------------------------------------------------------------------
def trade_protect(*, trade: Trade, now: datetime, broker: Broker | None = None) -> Order | None:
    """Make sure an open trade has exactly one working stop for its remaining quantity at
    `trade.stop_price` (minus what a working exit order is already selling). Same quantity,
    new price → broker modify; different quantity → cancel and replace."""
    trade.refresh_from_db()
    if trade.status != TradeStatus.OPEN or trade.remaining_qty <= 0:
        return None
    exiting = sum(
        o.qty - o.filled_qty
        for o in trade_orders(trade, roles=EXIT_ROLES + (OrderRole.TARGET_ONE,))
    )
    needed = trade.remaining_qty - exiting
    stops = list(trade_orders(trade, roles=[OrderRole.STOP]))
    targets = list(trade_orders(trade, roles=[OrderRole.TARGET_TWO]))
    if targets and stops and stops[0].parent_id:
        # a broker bracket: its OCO legs cover the quantity; only the stop price may move
        if stops[0].stop_price != _q(trade.stop_price):
            stop_move(order=stops[0], stop=trade.stop_price, now=now, broker=broker)
        return stops[0]
    keep = None
    for stop in stops:
        same_qty = stop.qty - stop.filled_qty == needed
        if keep is None and same_qty and needed > 0:
            keep = stop
            continue
        order_cancel(order=stop, now=now, cause="stop resized", broker=broker)
    if needed <= 0:
        return None
    if keep is not None:
        if keep.stop_price != _q(trade.stop_price):
            stop_move(order=keep, stop=trade.stop_price, now=now, broker=broker)
        return keep
    order = order_create(
        symbol=trade.execution_symbol,
        side="sell",
        qty=needed,
        order_type=OrderType.STOP,
        stop=trade.stop_price,
        role=OrderRole.STOP,
        tag=_unique_tag(f"{_trade_tag(trade)}-stop"),
        trade=trade,
        signal=trade.signal,
        now=now,
        broker=broker,
    )
    return order_submit(order=order, now=now, broker=broker)


def stop_move(*, order: Order, stop: Decimal, now: datetime, broker: Broker | None = None) -> Order:
    """Move a working stop's trigger price at the broker (Tradier modify = replace)."""
    broker = broker or broker_get()
    stop = _q(stop)
    if order.broker_order_id:
        try:
            broker.modify(order.broker_order_id, stop=stop)
        except BrokerError as exc:
            log.warning("stop modify of %s failed (%s): cancel and replace", order.tag, exc)
            order_cancel(order=order, now=now, cause="modify failed", broker=broker)
            if order.trade_id:
                return trade_protect(trade=order.trade, now=now, broker=broker) or order
            return order
    old = order.stop_price
    order.stop_price = stop
    order.save(update_fields=["stop_price", "updated_at"])
    OrderEvent.objects.create(
        order=order,
        from_status=order.status,
        to_status=order.status,
        cause=f"stop moved {old} -> {stop}",
        at=now,
    )
    return order


def _trade_tag(trade: Trade) -> str:
    if trade.signal_id:
        return trade.signal.tag.removesuffix("-entry")
    return f"at-trade-{trade.pk}"


# --- entries ------------------------------------------------------------------------------------
def trade_open(
    *,
    signal,
    decision: Decision,
    intent: Intent,
    params: SymbolParams,
    config: RiskConfig,
    now: datetime,
    use_otoco: bool,
    quote=None,
    broker: Broker | None = None,
) -> Trade:
    """The managed trade and its entry order rows (not yet sent). Called inside the decision
    lock, so the next decider counts this trade."""
    broker = broker or broker_get()
    entry_ref = Decimal(intent.entry_price)
    features = signal.features or {}
    time_stop = features.get("time_stop_sec")
    timeout = (
        timedelta(seconds=float(time_stop))
        if time_stop
        else timedelta(minutes=config.trade_timeout_min)
    )
    t1 = signal.target_one if not params.tp_pct else None
    t2 = signal.target_two
    stop = intent.stop_price
    if params.tp_pct:
        t2 = _q(entry_ref * (1 + params.tp_pct))
    trade = Trade.objects.create(
        signal=signal,
        setup=signal.setup,
        symbol=signal.symbol,
        execution_symbol=intent.symbol,
        side="buy",
        qty=decision.qty,
        remaining_qty=0,
        stop_price=_q(stop),
        initial_stop_price=_q(stop),
        target_one=_q(t1),
        target_two=_q(t2),
        trail_pct=params.trail_pct,
        trail_act_pct=params.trail_act_pct,
        deadline=now + timeout,
        status=TradeStatus.PENDING,
        created_at=now,
    )
    order_type, limit, why = entry_plan(side="buy", ref_price=entry_ref, quote=quote, config=config)
    if use_otoco:
        # A bracket's entry leg is a market order: the legs are priced from the entry, and a
        # pegged leg 0 cannot be turned into a market order without re-sending the bracket.
        order_type, limit, why = OrderType.MARKET, None, f"bracket entry at market ({why})"
    legs = []
    order_class = OrderClass.EQUITY
    if use_otoco:
        order_class = OrderClass.OTOCO
        legs = [
            {
                "symbol": intent.symbol,
                "side": "buy",
                "qty": decision.qty,
                "order_type": order_type,
                "price": str(limit) if limit else None,
                "stop": None,
            },
            {
                "symbol": intent.symbol,
                "side": "sell",
                "qty": decision.qty,
                "order_type": OrderType.LIMIT,
                "price": str(trade.target_two),
                "stop": None,
            },
            {
                "symbol": intent.symbol,
                "side": "sell",
                "qty": decision.qty,
                "order_type": OrderType.STOP,
                "price": None,
                "stop": str(trade.stop_price),
            },
        ]
    entry = order_create(
        symbol=intent.symbol,
        side="buy",
        qty=decision.qty,
        order_type=order_type,
        price=limit,
        role=OrderRole.ENTRY,
        tag=_unique_tag(signal.tag),
        trade=trade,
        signal=signal,
        order_class=order_class,
        legs=legs,
        now=now,
        broker=broker,
    )
    entry.request_payload = {"entry_plan": why}
    entry.save(update_fields=["request_payload"])
    if use_otoco:
        base = _trade_tag(trade)
        for role, leg in ((OrderRole.TARGET_TWO, legs[1]), (OrderRole.STOP, legs[2])):
            order_create(
                symbol=intent.symbol,
                side="sell",
                qty=decision.qty,
                order_type=leg["order_type"],
                price=_q(leg["price"]),
                stop=_q(leg["stop"]),
                role=role,
                tag=_unique_tag(f"{base}-{'tp' if role == OrderRole.TARGET_TWO else 'stop'}"),
                trade=trade,
                signal=signal,
                parent=entry,
                order_class=OrderClass.OTOCO,
                now=now,
                broker=broker,
            )
    return trade


def entry_submit(*, trade: Trade, now: datetime, broker: Broker | None = None) -> Order | None:
    """Send the trade's entry order (children of a bracket travel with it)."""
    entry = trade_orders(trade, roles=[OrderRole.ENTRY]).filter(status=OrderStatus.NEW).first()
    if entry is None:
        return None
    order = order_submit(order=entry, now=now, broker=broker)
    if order.status == OrderStatus.REJECTED:
        trade.refresh_from_db()
        _trade_close(trade, now, TradeStatus.CANCELLED, reason="entry_rejected")
    return order


def entries_escalate(*, now: datetime, config: RiskConfig, broker: Broker | None = None) -> int:
    """Replace pegged entry limits older than ENTRY_LIMIT_TIMEOUT_SEC by market orders for the
    unfilled rest. Returns how many were replaced."""
    deadline = now - timedelta(seconds=config.entry_limit_timeout_sec)
    replaced = 0
    stale = working_orders().filter(
        role=OrderRole.ENTRY,
        order_type=OrderType.LIMIT,
        order_class=OrderClass.EQUITY,
        created_at__lte=deadline,
    )
    for order in stale:
        replaced += entry_limit_replace(order=order, now=now, broker=broker) is not None
    return replaced


def entry_limit_replace(*, order: Order, now: datetime, broker: Broker | None = None):
    """Turn a timed-out pegged entry limit into a market order for the unfilled rest: a broker
    modify of the same order (same tag, one order per signal); if the broker refuses the
    modify, cancel and send a market order with a derived tag."""
    broker = broker or broker_get()
    order.refresh_from_db()
    if not order.is_working or order.order_type != OrderType.LIMIT:
        return None
    try:
        if order.broker_order_id:
            broker.modify(order.broker_order_id, order_type=OrderType.MARKET)
    except BrokerError as exc:
        log.warning("entry %s: modify to market refused (%s); cancel and replace", order.tag, exc)
        return _entry_cancel_replace(order=order, now=now, broker=broker)
    old = order.price
    order.order_type = OrderType.MARKET
    order.price = None
    order.save(update_fields=["order_type", "price", "updated_at"])
    OrderEvent.objects.create(
        order=order,
        from_status=order.status,
        to_status=order.status,
        cause=f"entry limit {old} timed out: modified to market",
        at=now,
    )
    return order


def _entry_cancel_replace(*, order: Order, now: datetime, broker: Broker):
    order_cancel(
        order=order, now=now, cause="entry limit timeout: replaced by market", broker=broker
    )
    order.refresh_from_db()
    rest = order.qty - order.filled_qty
    if order.status != OrderStatus.CANCELLED or rest <= 0 or order.trade_id is None:
        return None
    trade = Trade.objects.get(pk=order.trade_id)
    if trade.status == TradeStatus.CANCELLED:
        trade.status = TradeStatus.PENDING
        trade.closed_at = None
        trade.exit_reason = ""
        trade.save()
    market = order_create(
        symbol=order.symbol,
        side=order.side,
        qty=rest,
        order_type=OrderType.MARKET,
        role=OrderRole.ENTRY,
        tag=_unique_tag(f"{order.tag.removesuffix('-entry')}-mkt"),
        trade=trade,
        signal=order.signal,
        now=now,
        broker=broker,
    )
    return order_submit(order=market, now=now, broker=broker)


# --- exits --------------------------------------------------------------------------------------
def trade_exit(
    *,
    trade: Trade,
    qty: int | None,
    reason: str,
    now: datetime,
    new_stop: Decimal | None = None,
    role: str = OrderRole.EXIT,
    broker: Broker | None = None,
) -> Order | None:
    """Sell `qty` (None = all) of an open trade at market, keeping the rest protected.

    Never exits twice: if an exit order is already working, nothing is sent. The protective
    stop is first cancelled (the broker confirms) and, for a partial exit, re-placed for the
    remaining quantity at `new_stop` (or the current stop).
    """
    trade.refresh_from_db()
    if trade.status != TradeStatus.OPEN or trade.remaining_qty <= 0:
        return None
    if trade_orders(trade, roles=EXIT_ROLES).exists():
        return None
    qty = trade.remaining_qty if qty is None else min(int(qty), trade.remaining_qty)
    if qty <= 0:
        return None
    full = qty >= trade.remaining_qty
    for leg in trade_orders(trade, roles=PROTECTIVE_ROLES):
        order_cancel(order=leg, now=now, cause=f"exit: {reason}", broker=broker)
    trade.refresh_from_db()
    if trade.status != TradeStatus.OPEN or trade.remaining_qty <= 0:
        return None  # a leg filled while we cancelled: the trade is already out
    if trade_orders(trade, roles=PROTECTIVE_ROLES).exists():
        log.warning("trade %s: protective legs not cancelled yet; exit retried later", trade.pk)
        return None  # selling now could sell twice
    qty = min(qty, trade.remaining_qty)
    if full:
        trade.exit_reason = reason
    if new_stop is not None:
        trade.stop_price = _q(new_stop)
    trade.save()
    order = order_create(
        symbol=trade.execution_symbol,
        side="sell",
        qty=qty,
        order_type=OrderType.MARKET,
        role=role,
        tag=_unique_tag(f"{_trade_tag(trade)}-{reason.replace('_', '')[:12]}"),
        trade=trade,
        signal=trade.signal,
        now=now,
        broker=broker,
    )
    order = order_submit(order=order, now=now, broker=broker)
    if not full:
        trade_protect(trade=trade, now=now, broker=broker)
    return order


# --- operations ---------------------------------------------------------------------------------
def orders_cancel_all(
    *, symbol: str | None = None, include_protective: bool = False, now=None, user=None
) -> dict:
    """Cancel working orders (of `symbol`). Protective stops/targets of open trades are kept
    unless `include_protective` (flatten is the way out of a position)."""
    now = now or clock.now()
    cancelled, kept = [], []
    for order in working_orders(symbol=symbol).order_by("id"):
        protective = order.role in PROTECTIVE_ROLES and order.trade_id
        if protective and not include_protective:
            kept.append(order.pk)
            continue
        order_cancel(order=order, now=now, cause="cancel all")
        cancelled.append(order.pk)
    if user is not None:
        AuditEvent.objects.create(
            action="orders_cancel_all",
            user=user if getattr(user, "pk", None) else None,
            details={"symbol": symbol, "cancelled": cancelled, "kept_protective": kept},
        )
    return {"cancelled": cancelled, "kept_protective": kept}


def orders_cancel_stale(*, minutes: int, now=None) -> dict:
    """Cancel non-protective working orders created more than `minutes` ago."""
    now = now or clock.now()
    cutoff = now - timedelta(minutes=int(minutes))
    cancelled = []
    for order in working_orders().filter(created_at__lt=cutoff).exclude(role__in=PROTECTIVE_ROLES):
        order_cancel(order=order, now=now, cause=f"stale > {minutes} min")
        cancelled.append(order.pk)
    return {"cancelled": cancelled, "minutes": int(minutes)}


def positions_flatten(
    *, symbol: str | None = None, reason: str = "flatten", now=None, user=None
) -> dict:
    """Close every open trade (of `symbol`) at market and cancel their working entries; any
    position the trades do not explain (external) is closed too. Audited."""
    now = now or clock.now()
    closed_trades, orders = [], []
    for trade in open_trades(symbol=symbol):
        for entry in trade_orders(trade, roles=[OrderRole.ENTRY]):
            order_cancel(order=entry, now=now, cause=reason)
        trade.refresh_from_db()
        if trade.status == TradeStatus.OPEN:
            order = trade_exit(
                trade=trade, qty=None, reason=reason, now=now, role=OrderRole.FLATTEN
            )
            if order is not None:
                orders.append(order.pk)
        closed_trades.append(trade.pk)
    # Positions not covered by managed trades (adopted, manual).
    broker = broker_get()
    managed = {}
    for trade in open_trades(symbol=symbol).filter(status=TradeStatus.OPEN):
        managed[trade.execution_symbol] = (
            managed.get(trade.execution_symbol, 0) + trade.remaining_qty
        )
    positions = Position.objects.exclude(qty=0)
    if symbol:
        positions = positions.filter(symbol=symbol.upper())
    for position in positions:
        rest = position.qty - managed.get(position.symbol, 0)
        pending = sum(
            o.qty - o.filled_qty
            for o in working_orders(symbol=position.symbol).filter(
                role=OrderRole.FLATTEN, trade=None
            )
        )
        rest = rest - pending if rest > 0 else rest + pending
        if rest == 0:
            continue
        order = order_create(
            symbol=position.symbol,
            side="sell" if rest > 0 else "buy_to_cover",
            qty=abs(rest),
            order_type=OrderType.MARKET,
            role=OrderRole.FLATTEN,
            tag=_unique_tag(f"at-flatten-{position.symbol}-{now:%Y%m%d%H%M}"),
            now=now,
            broker=broker,
        )
        order_submit(order=order, now=now, broker=broker)
        orders.append(order.pk)
    AuditEvent.objects.create(
        action="positions_flatten",
        user=user if getattr(user, "pk", None) else None,
        details={"symbol": symbol, "reason": reason, "trades": closed_trades, "orders": orders},
    )
    return {"trades": closed_trades, "orders": orders}


def account_balances() -> dict:
    """The broker's balances as plain values."""
    b = broker_get().balances()
    return {
        "broker": broker_get().name,
        "cash": str(b.cash),
        "equity": str(b.equity),
        "buying_power": None if b.buying_power is None else str(b.buying_power),
        "open_pnl": str(b.open_pnl),
        "day_pnl": None if b.day_pnl is None else str(b.day_pnl),
    }


def account_snapshot_take(*, now=None):
    """Store the broker's balances (beat job); the dashboard and risk read the latest."""
    from trading.models import AccountSnapshot
    from trading.selectors import day_pnl

    now = now or clock.now()
    broker = broker_get()
    b = broker.balances()
    return AccountSnapshot.objects.create(
        ts=now,
        broker=broker.name,
        equity=b.equity,
        cash=b.cash,
        buying_power=b.buying_power,
        day_pnl=b.day_pnl if b.day_pnl is not None else day_pnl(now=now),
        open_pnl=b.open_pnl,
        raw={k: str(v) for k, v in (b.raw or {}).items()},
    )


def positions_list() -> list[dict]:
    """Ledger positions with their open trades' stops (the protective plan)."""
    from trading.selectors import positions_list as rows

    out = []
    for p in rows():
        stops = list(
            working_orders(symbol=p.symbol)
            .filter(role=OrderRole.STOP)
            .values_list("stop_price", "qty")
        )
        out.append(
            {
                "symbol": p.symbol,
                "qty": p.qty,
                "avg_price": str(p.avg_price),
                "last_price": None if p.last_price is None else str(p.last_price),
                "unrealized_pnl": str(p.unrealized_pnl),
                "realized_pnl": str(p.realized_pnl),
                "stops": [{"stop": str(s), "qty": q} for s, q in stops],
            }
        )
    return out


def bar_mark(*, symbol: str, price: Decimal) -> None:
    """Mark a position to the latest price (unrealized P&L, day-loss limit)."""
    Position.objects.filter(symbol=symbol).update(last_price=_q(price))


def heartbeat_record(*, name: str, now: datetime, info: dict | None = None):
    """A worker's sign of life for the health endpoint."""
    from trading.models import WorkerHeartbeat

    row, _ = WorkerHeartbeat.objects.update_or_create(
        name=name[:128], defaults={"at": now, "info": info or {}}
    )
    return row


# --- brackets and dry-run orders (operator API) -------------------------------------------------
def _last_price(symbol: str) -> Decimal | None:
    from marketdata.selectors import bars_as_data

    last = bars_as_data(symbol=symbol, limit=1)
    return _q(last[-1].close) if last else None


def bracket_preview(
    *,
    symbol: str,
    qty: int | None = None,
    stop_pct: Decimal | float | str | None = None,
    tp_pct: Decimal | float | str | None = None,
    price: Decimal | float | str | None = None,
    now: datetime | None = None,
) -> dict:
    """Stop, target, notional, risk and reward of a bracket before placing it, with the risk
    checks it would meet. Percentages default to the symbol's effective STOP/TP values."""
    from risk.services import risk_preview

    symbol = symbol.upper()
    params = symbol_params_get(symbol=symbol)
    stop_pct = Decimal(str(stop_pct)) if stop_pct is not None else params.stop_pct
    tp_pct = Decimal(str(tp_pct)) if tp_pct is not None else params.tp_pct
    base = _q(price) if price is not None else _last_price(symbol)
    if base is None:
        return {"symbol": symbol, "error": "no price: pass price=", "approved": False}
    if not stop_pct or not tp_pct:
        return {
            "symbol": symbol,
            "price": str(base),
            "error": "stop_pct and tp_pct are required (argument, override, or STOP_PCT/TP_PCT)",
            "approved": False,
        }
    stop = _q(base * (1 - stop_pct))
    target = _q(base * (1 + tp_pct))
    risk = risk_preview(symbol=symbol, qty=qty, price=base, stop_price=stop, now=now)
    size = risk["qty"] or 0
    return {
        "symbol": symbol,
        "price": str(base),
        "qty": size,
        "stop_pct": str(stop_pct),
        "tp_pct": str(tp_pct),
        "stop": str(stop),
        "target": str(target),
        "notional": str(_q(base * size)),
        "risk_per_share": str(base - stop),
        "risk_usd": str(_q((base - stop) * size)),
        "reward_usd": str(_q((target - base) * size)),
        "reward_risk": str(((target - base) / (base - stop)).quantize(Decimal("0.01"))),
        "approved": risk["approved"],
        "checks": risk["checks"],
        "reasons": risk["reasons"],
    }


class ForceNotAllowed(PermissionError):
    """`force` (skip the risk rules) is for superusers only."""


def bracket_place(
    *,
    symbol: str,
    qty: int | None = None,
    stop_pct=None,
    tp_pct=None,
    price=None,
    order_type: str = OrderType.MARKET,
    force: bool = False,
    user=None,
    now: datetime | None = None,
) -> dict:
    """Place an OTOCO bracket (entry, take-profit limit, protective stop). Risk rules apply
    unless `force`, which needs a superuser and is audited. Respects DRY_RUN (paper broker)."""
    from risk.config import RiskConfig
    from risk.services import decision_lock
    from trading.selectors import exposure_snapshot

    now = now or clock.now()
    if force and not getattr(user, "is_superuser", False):
        raise ForceNotAllowed("force=true needs a superuser")
    preview = bracket_preview(
        symbol=symbol, qty=qty, stop_pct=stop_pct, tp_pct=tp_pct, price=price, now=now
    )
    if preview.get("error"):
        return {**preview, "placed": False}
    if not preview["approved"] and not force:
        return {**preview, "placed": False}
    size = int(qty or preview["qty"] or 0)
    if size < 1:
        return {**preview, "placed": False, "error": "quantity is 0"}
    symbol = preview["symbol"]
    entry_price = Decimal(preview["price"])
    stop, target = Decimal(preview["stop"]), Decimal(preview["target"])
    broker = broker_get()
    config = RiskConfig.from_settings()
    with decision_lock():
        if not force:  # re-check inside the lock: limits hold across workers
            from risk import rules

            params = symbol_params_get(symbol=symbol, config=config)
            decision = rules.evaluate(
                Intent(symbol=symbol, entry_price=entry_price, stop_price=stop, qty=size),
                exposure_snapshot(now=now),
                config,
                now,
                params,
            )
            if not decision.approved:
                return {**preview, "placed": False, "reasons": decision.reasons}
        trade = Trade.objects.create(
            setup="MANUAL_BRACKET",
            symbol=symbol,
            execution_symbol=symbol,
            qty=size,
            stop_price=stop,
            initial_stop_price=stop,
            target_two=target,
            deadline=None,
            created_at=now,
        )
        limit = _q(price) if order_type == OrderType.LIMIT else None
        legs = [
            {
                "symbol": symbol,
                "side": "buy",
                "qty": size,
                "order_type": order_type,
                "price": str(limit) if limit else None,
                "stop": None,
            },
            {
                "symbol": symbol,
                "side": "sell",
                "qty": size,
                "order_type": OrderType.LIMIT,
                "price": str(target),
                "stop": None,
            },
            {
                "symbol": symbol,
                "side": "sell",
                "qty": size,
                "order_type": OrderType.STOP,
                "price": None,
                "stop": str(stop),
            },
        ]
        base = f"at-manual-{symbol}-{now:%Y%m%d%H%M%S}"
        entry = order_create(
            symbol=symbol,
            side="buy",
            qty=size,
            order_type=order_type,
            price=limit,
            role=OrderRole.ENTRY,
            tag=_unique_tag(f"{base}-entry"),
            trade=trade,
            order_class=OrderClass.OTOCO,
            legs=legs,
            now=now,
            broker=broker,
        )
        for role, leg, suffix in (
            (OrderRole.TARGET_TWO, legs[1], "tp"),
            (OrderRole.STOP, legs[2], "stop"),
        ):
            order_create(
                symbol=symbol,
                side="sell",
                qty=size,
                order_type=leg["order_type"],
                price=_q(leg["price"]),
                stop=_q(leg["stop"]),
                role=role,
                tag=_unique_tag(f"{base}-{suffix}"),
                trade=trade,
                parent=entry,
                order_class=OrderClass.OTOCO,
                now=now,
                broker=broker,
            )
        AuditEvent.objects.create(
            action="bracket_place_forced" if force else "bracket_place",
            user=user if getattr(user, "pk", None) else None,
            details={
                "symbol": symbol,
                "qty": size,
                "stop": str(stop),
                "target": str(target),
                "force": force,
                "reasons": preview["reasons"],
                "trade": trade.pk,
            },
        )
    order = order_submit(order=entry, now=now, broker=broker)
    if order.status == OrderStatus.REJECTED:
        _trade_close(trade, now, TradeStatus.CANCELLED, reason="entry_rejected")
    return {
        **preview,
        "qty": size,
        "placed": order.status != OrderStatus.REJECTED,
        "forced": force,
        "dry_run": broker.name == "paper",
        "order_id": order.pk,
        "tag": order.tag,
        "status": order.status,
        "reject_reason": order.reject_reason,
        "trade_id": trade.pk,
    }


def order_dryrun(
    *, symbol: str, side: str, qty: int, order_type: str = "market", price=None, stop=None
) -> dict:
    """What would be sent for this order (Tradier form, validated like Tradier) and what the
    risk rules say (for buys). Nothing is sent or stored."""
    from risk.services import risk_preview
    from trading.brokers.base import validate_request
    from trading.brokers.tradier import order_form

    request = OrderRequest(
        symbol=symbol.upper(),
        side=side,
        qty=int(qty),
        order_type=order_type,
        tag="at-dryrun-preview",
        price=_q(price),
        stop=_q(stop),
    )
    try:
        validate_request(request)
        valid, problem = True, ""
    except BrokerRejected as exc:
        valid, problem = False, str(exc)
    out = {"valid": valid, "error": problem, "request": order_form(request), "dry_run": True}
    if side == "buy":
        out["risk"] = risk_preview(symbol=symbol, qty=int(qty), price=price, stop_price=stop)
    return out
