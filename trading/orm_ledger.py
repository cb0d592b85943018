"""The ledger of the live and paper path: orders, fills, positions and trades in the database,
orders sent to a broker (`trading.brokers`). `OrmLedger` is the `trading.core.ledger.Ledger`
the lifecycle core drives; the functions below it are the row and broker primitives it uses.

Safety rules kept here:
- an order row (with its idempotency tag) is committed BEFORE the broker is called, and claimed
  (new -> submitted) in a durable transaction that commits before the call: no transaction is
  open during a broker send, so a rollback never forgets one and a crash or killed connection
  after it is found again by its tag at reconciliation, never sent twice; a send decided inside
  a transaction (a fill's stop) waits for its commit (`trading.after_commit`);
- a send in flight holds a session advisory lock (`send_lock`); the order row is locked
  (select_for_update) while a fill or an answer is applied, the trade row while a fill moves it;
- exposure is read inside the PostgreSQL advisory decision lock (`risk.services.decision_lock`);
- a ledger is one book (`strategies.models.Book`): the account's, or the paper book of setups in
  paper mode while the account trades live (`trading.paper_book`). Every read and write of an
  `OrmLedger` stays inside its book, so the paper book never counts against the account.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from functools import partial

from django.db import Error as DatabaseFailure
from django.db import IntegrityError, connection, transaction
from django.db.models import DecimalField, Sum
from django.db.models.functions import Coalesce

from autotrader_site.clock import clock
from autotrader_site.live_events import live_event_publish
from autotrader_site.metrics import ACTIVE_TRADES, DECISION_TO_ACK_SECONDS
from strategies.models import Book
from trading.after_commit import after_commit, transaction_open
from trading.after_commit import atomic as sending_atomic
from trading.brokers import broker_get
from trading.brokers.base import (
    Broker,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    Leg,
    OrderRequest,
)
from trading.core import lifecycle
from trading.core.states import BROKER_STATUS, trade_can_transition
from trading.core.types import FOUR, ZERO, to_cent
from trading.models import (
    WORKING_STATUSES,
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
from trading.selectors import (
    PROTECTIVE_ROLES,
    open_trades,
    trade_orders,
    working_orders,
)
from trading.state_machine import order_advance, order_transition

log = logging.getLogger(__name__)
_MONEY = DecimalField(max_digits=20, decimal_places=6)
DECIDED_OUTCOMES = ("approved", "dry_run", "submitted")


# --- order rows and the broker -----------------------------------------------------------------
def request_of(order: Order) -> OrderRequest:
    legs = tuple(
        Leg(
            symbol=leg["symbol"],
            side=leg["side"],
            qty=int(leg["qty"]),
            order_type=leg["order_type"],
            price=to_cent(leg.get("price")),
            stop=to_cent(leg.get("stop")),
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
    book: str = Book.ACCOUNT,
) -> Order:
    """A new order row (status new) of `book`. Nothing is sent yet."""
    broker = broker or broker_get()
    order = Order.objects.create(
        tag=tag,
        broker=broker.name,
        book=book,
        symbol=symbol.upper(),
        side=side,
        qty=int(qty),
        order_type=order_type,
        order_class=order_class,
        price=to_cent(price),
        stop_price=to_cent(stop),
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


def unique_tag(base: str) -> str:
    """`base`, or `base-2`, `base-3`... when taken (a replacement order of the same plan)."""
    if not Order.objects.filter(tag=base).exists():
        return base
    n = 2
    while Order.objects.filter(tag=f"{base}-{n}").exists():
        n += 1
    return f"{base}-{n}"


def trade_tag(trade: Trade) -> str:
    if trade.signal_id:
        return trade.signal.tag.removesuffix("-entry")
    return f"at-trade-{trade.pk}"


SEND_LOCK_NS = 1_700_017  # advisory-lock namespace of orders being sent (key 2: the order id)
TRADE_LOCK_NS = 1_700_018  # ... of trades whose exits are being managed (key 2: the trade id)


def order_submit(
    *,
    order: Order,
    now: datetime | None = None,
    broker: Broker | None = None,
    resend: bool = False,
) -> Order:
    """Send a `new` order to the broker and record the answer through the state machine.

    The broker is never called inside a transaction: one rolled back after the call (a killed
    connection) would forget the send and the retry would send again. Called inside one (a
    fill's stop, a reconciliation correction), the send waits for its commit
    (`trading.after_commit`). The order is first claimed (new -> submitted, outcome unknown)
    in a durable transaction that commits before the call, so a crash or a killed connection
    during the call leaves it `submitted` for reconciliation to settle by tag, never re-sent.
    Rejected -> rejected (reason kept); unknown outcome (timeouts/5xx after the broker client
    looked the tag up) -> stays submitted. `resend`: a claimed order the broker never answered
    (no broker id) is sent again with its tag — only by `trading.services.entry_resume`, after
    its attempt died and the tag stayed unknown at the broker over the settle window.
    """
    broker = broker or broker_get()
    now = now or clock.now()
    if transaction_open():
        after_commit(partial(order_submit, order=order, now=now, broker=broker))
        return order
    with send_lock(order.pk):
        with transaction.atomic(durable=True):
            claimed = Order.objects.select_for_update().filter(pk=order.pk).first()
            unanswered = (
                resend
                and claimed is not None
                and claimed.status == OrderStatus.SUBMITTED
                and not claimed.broker_order_id
            )
            if claimed is None or (claimed.status != OrderStatus.NEW and not unanswered):
                order.refresh_from_db()
                return order
            request = (
                _order_reclaim(claimed, now=now) if unanswered else _order_claim(claimed, now=now)
            )
        started = clock.now()
        try:
            ack = broker.submit(request)
        except BrokerRejected as exc:
            return _answer_record(order, now, rejected=exc)
        except BrokerUnavailable as exc:
            return _answer_record(order, now, unknown=exc)
        DECISION_TO_ACK_SECONDS.observe(max(0.0, (clock.now() - started).total_seconds()))
        return _answer_record(order, now, ack=ack, broker=broker)


@contextmanager
def _session_lock(namespace: int, key: int, what: str):
    """A session advisory lock (waited for), released on exit. It dies with the connection:
    a killed worker or a terminated backend holds none."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [namespace, key])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])
        except DatabaseFailure:  # the connection died: the lock went with it
            log.warning("%s lock %s released with its connection", what, key)


def send_lock(order_pk: int):
    """Held while the order is sent: reconciliation and the account stream see the send in
    flight."""
    return _session_lock(SEND_LOCK_NS, order_pk, "send")


def trade_lock(trade_pk: int):
    """Held while one process manages a trade's exits (`lifecycle.manage_exits`): the beat's
    exit tick and a bar's own exit step run on different pool processes, and two of them
    protecting or exiting the same trade at once placed two stops, or cancelled in the ledger
    a stop the other had just sent."""
    return _session_lock(TRADE_LOCK_NS, trade_pk, "trade")


def send_in_flight(order_pk: int) -> bool:
    """True while another connection sends this order (call inside a transaction)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [SEND_LOCK_NS, order_pk])
        return not cursor.fetchone()[0]


def send_wait(order_pk: int) -> None:
    """Wait (inside a transaction) until a send of this order in flight has recorded its
    answer: an account event for a fast fill finds the broker's id on the row."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SEND_LOCK_NS, order_pk])


def _order_claim(order: Order, *, now: datetime) -> OrderRequest:
    from trading.brokers.tradier import order_form

    request = request_of(order)
    order.request_payload = order_form(request)  # the form as Tradier would receive it
    order.save(update_fields=["request_payload", "updated_at"])
    order_transition(order, OrderStatus.SUBMITTED, cause="sending: outcome unknown", at=now)
    return request


def _order_reclaim(order: Order, *, now: datetime) -> OrderRequest:
    OrderEvent.objects.create(
        order=order,
        from_status=order.status,
        to_status=order.status,
        cause="resumed: its attempt died, the tag is not at the broker: sent again",
        at=now,
    )
    return request_of(order)


def _answer_record(
    order: Order,
    now: datetime,
    *,
    ack=None,
    broker: Broker | None = None,
    rejected: Exception | None = None,
    unknown: Exception | None = None,
) -> Order:
    """The broker's answer, recorded in its own transaction once the call returned."""
    with transaction.atomic(durable=True):
        order = Order.objects.select_for_update().get(pk=order.pk)
        if rejected is not None:
            order.reject_reason = str(rejected)[:255]
            order.save(update_fields=["reject_reason", "updated_at"])
            order_transition(order, OrderStatus.REJECTED, cause=f"rejected: {rejected}", at=now)
            children_close(order, OrderStatus.REJECTED, now, "parent rejected")
            return order
        if unknown is not None:
            OrderEvent.objects.create(
                order=order,
                from_status=order.status,
                to_status=order.status,
                cause=f"outcome unknown ({unknown}); reconciliation settles by tag"[:255],
                at=now,
            )
            _pair_follow(order, now)
            return order
        if not order.broker_order_id:
            order.broker_order_id = ack.id
        order.response_payload = ack.raw or {"id": ack.id, "status": ack.status}
        order.save(update_fields=["broker_order_id", "response_payload", "updated_at"])
        OrderEvent.objects.create(
            order=order,
            from_status=order.status,
            to_status=order.status,
            cause=f"accepted by {broker.name}",
            at=now,
        )
        status = BROKER_STATUS.get(ack.status, OrderStatus.OPEN)
        if order.status == OrderStatus.SUBMITTED and status != OrderStatus.SUBMITTED:
            order_advance(order, status, cause=f"broker status {ack.status}", at=now)
        children = list(order.children.order_by("id"))
        pair = order.order_class == OrderClass.OCO
        legs = ack.legs[1:] if len(ack.legs) == 3 or pair else ack.legs
        for child, leg in zip(children, legs, strict=False):
            if leg.id and not child.broker_order_id:
                child.broker_order_id = leg.id
                child.save(update_fields=["broker_order_id", "updated_at"])
        if pair:
            pair_legs_link(order, ack.legs)
            _pair_follow(order, now)
        return order


def _pair_follow(head: Order, now: datetime) -> None:
    """An OCO's limit leg works from the moment its pair does (status as the head's)."""
    if head.order_class != OrderClass.OCO or head.parent_id:
        return
    for child in head.children.filter(status=OrderStatus.NEW):
        order_advance(child, head.status, cause="pair leg working", at=now)


def pair_legs_link(head: Order, legs) -> None:
    """Keep the broker's id of an OCO's stop leg on its head row (the head carries the pair's
    id; a stop move modifies the leg). Paper and placement answers may not list the legs."""
    if not legs or not legs[0].id or not head.legs:
        return
    if head.legs[0].get("id") == legs[0].id:
        return
    head.legs = [{**head.legs[0], "id": legs[0].id}, *head.legs[1:]]
    head.save(update_fields=["legs", "updated_at"])


def children_close(order: Order, status: str, now: datetime, cause: str) -> None:
    """A bracket's legs end with their parent."""
    for child in order.children.filter(status__in=WORKING_STATUSES):
        order_advance(child, status, cause=cause, at=now)


def broker_cancel(*, order: Order, now: datetime, cause: str, broker: Broker) -> bool:
    """Cancel a working order at the broker, then in the ledger. Returns True when the row
    went to cancelled now. A live cancel is confirmed by reading the order back. An order
    with no broker id is cancelled in the ledger alone only while it is still `new` (never
    sent); a claimed one (its send in flight, or its outcome unknown) is cancelled at the
    broker once its id is known — marking it cancelled before left a live order at the
    broker that the ledger called cancelled (the soak's stop filled at the broker)."""
    order.refresh_from_db()
    if order.status not in WORKING_STATUSES:
        return False
    if not order.broker_order_id and not order.parent_id:
        if _unsent_cancelled(order, now=now, cause=cause):
            children_close(order, OrderStatus.CANCELLED, now, "parent cancelled")
            return True
        if not _linked_by_tag(order, broker=broker):
            log.warning("cancel of %s waits: sent, its broker id not known yet", order.tag)
            return False
    if order.broker_order_id and order.status != OrderStatus.NEW:
        target = order.broker_order_id
        if order.parent_id and order.order_class in (OrderClass.OTOCO, OrderClass.OCO):
            # a bracket leg is cancelled through its bracket (the broker cancels open legs)
            target = order.parent.broker_order_id or target
        try:
            answer = broker.cancel(target)
        except BrokerError as exc:
            log.warning("cancel of %s failed: %s; syncing from broker", order.tag, exc)
            _sync(order, now, broker)
            return False
        status = BROKER_STATUS.get(answer.status, OrderStatus.CANCELLED)
        if status not in (OrderStatus.CANCELLED, OrderStatus.OPEN):
            _sync(order, now, broker)
            return False
        if broker.name != "paper" and not _cancel_confirmed(order, now, broker):
            return False
    order_advance(order, OrderStatus.CANCELLED, cause=cause, at=now)
    if order.parent_id is None:
        children_close(order, OrderStatus.CANCELLED, now, "parent cancelled")
    elif order.order_class == OrderClass.OCO and order.status == OrderStatus.CANCELLED:
        head = order.parent  # the broker cancelled the whole pair
        if head.status in WORKING_STATUSES:
            order_advance(head, OrderStatus.CANCELLED, cause=f"pair cancelled: {cause}", at=now)
    return order.status == OrderStatus.CANCELLED


def _unsent_cancelled(order: Order, *, now: datetime, cause: str) -> bool:
    """Cancel in the ledger an order that never left: still `new` under its row lock, so a
    sender's claim (new -> submitted, under the same lock) comes wholly before or after.
    False when it was claimed (its send in flight, or its outcome unknown)."""
    with sending_atomic():
        row = Order.objects.select_for_update().filter(pk=order.pk).first()
        unsent = row is not None and row.status == OrderStatus.NEW and not row.broker_order_id
        if unsent:
            order_advance(row, OrderStatus.CANCELLED, cause=cause, at=now)
    order.refresh_from_db()
    return unsent


def broker_order_by_tag(broker: Broker, tag: str):
    """The broker's order carrying `tag`, or None (BrokerError when it cannot be asked)."""
    by_tag = getattr(broker, "orders_by_tag", None)
    found = by_tag(tag) if by_tag else [o for o in broker.orders() if o.tag == tag]
    return found[0] if found else None


def _linked_by_tag(order: Order, *, broker: Broker) -> bool:
    """A claimed order with no broker id and no send in flight (its sender died, or the
    broker's answer was lost): look its tag up, and link it when the broker has it, so the
    cancel goes to the broker. False while a send is in flight or the tag is not found."""
    with sending_atomic():
        if send_in_flight(order.pk):
            return False
    try:
        found = broker_order_by_tag(broker, order.tag)
    except BrokerError as exc:
        log.warning("cancel of %s: tag look-up failed (%s)", order.tag, exc)
        return False
    if found is None:
        return False
    with sending_atomic():
        row = Order.objects.select_for_update().get(pk=order.pk)
        if not row.broker_order_id:
            row.broker_order_id = found.id
            row.save(update_fields=["broker_order_id", "updated_at"])
    order.refresh_from_db()
    return order.status in WORKING_STATUSES


def _sync(order: Order, now: datetime, broker: Broker) -> None:
    from trading.services.orders import order_sync

    order_sync(order=order, now=now, broker=broker)


def _cancel_confirmed(order: Order, now: datetime, broker: Broker) -> bool:
    """A live cancel is only a request: read the order back. Filled meanwhile -> the fill is
    applied and the cancel is not recorded; still working -> left working (retried later)."""
    from trading.brokers.base import OrderNotFound
    from trading.services.orders import order_apply_remote

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


# --- fills and positions -----------------------------------------------------------------------
def fill_record(
    *,
    order: Order,
    qty: int,
    price: Decimal,
    ts: datetime,
    fill_id: str,
    fee: Decimal | None,
    cost_model=None,
) -> Fill | None:
    """The Fill row (once per broker fill id), the order's filled quantity, average price and
    status, and the net position. Call inside a transaction: the order row is locked.
    `fee` None (a broker's fill): `cost_model(symbol).fill_fee` of the quantity recorded, the
    per-order commission on the order's first fill only, read under the lock so a fill
    delivered twice or racing another report is charged once (`broker_fill_fee`)."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    qty = min(int(qty), order.qty - order.filled_qty)
    if qty <= 0:
        return None
    price = to_cent(price)
    if fee is None:
        fee = broker_fill_fee(order, qty, price, cost_model=cost_model)
    try:
        with transaction.atomic():
            fill = Fill.objects.create(
                order=order,
                broker_fill_id=fill_id,
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
    previous_avg = order.avg_fill_price or ZERO
    order.avg_fill_price = ((previous_avg * before + price * qty) / order.filled_qty).quantize(FOUR)
    status = OrderStatus.FILLED if order.filled_qty >= order.qty else OrderStatus.PARTIALLY_FILLED
    # the quantities first: a refused or repeated status (partial -> partial) keeps them too
    order.save(update_fields=["filled_qty", "avg_fill_price", "updated_at"])
    cause = f"fill {qty} @ {price}"
    if order.status == status:
        order_transition(order, status, cause=cause, at=ts)  # one more partial fill, logged
    else:
        order_advance(order, status, cause=cause, at=ts)
    _position_apply(order.symbol, order.side, qty, price, fee, book=order.book)
    return fill


def broker_fill_fee(order: Order, qty: int, price: Decimal, *, cost_model=None) -> Decimal:
    """The fee of a broker-reported fill of `qty` at `price` (Tradier's order reports carry no
    commission): the symbol's cost model, as paper and the backtests charge it, the per-order
    commission when nothing of the (locked) order has filled yet. `cost_model(symbol)` gives
    the model (default: the settings with the symbol's override)."""
    if cost_model is None:
        cost_model = symbol_cost_model
    return cost_model(order.symbol).fill_fee(
        order.side, qty, price, first_fill=order.filled_qty == 0
    )


def symbol_cost_model(symbol: str, base=None):
    """The symbol's cost model: `base` (default: the settings' model) with the symbol's
    override row applied."""
    from risk.costs import cost_model_for, cost_model_from_settings
    from risk.models import SymbolOverride

    base = base if base is not None else cost_model_from_settings()
    return cost_model_for(base, SymbolOverride.objects.filter(symbol=symbol.upper()).first())


def _position_apply(
    symbol: str, side: str, qty: int, price: Decimal, fee: Decimal, *, book: str
) -> None:
    position, _ = Position.objects.select_for_update().get_or_create(book=book, symbol=symbol)
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
            position.avg_price = ZERO
    position.realized_pnl -= fee
    position.qty = new_qty
    position.avg_price = Decimal(position.avg_price).quantize(FOUR)
    if new_qty == 0:
        # Flat: the realized P&L is exactly the cash flows of every fill (no rounding of the
        # average price carried over).
        position.realized_pnl = _symbol_cash_flows(symbol, book)
    position.last_price = price
    position.save()


def _symbol_cash_flows(symbol: str, book: str) -> Decimal:
    total = ZERO
    for side, qty, price, fee in Fill.objects.filter(symbol=symbol, order__book=book).values_list(
        "side", "qty", "price", "fee"
    ):
        total += (price * qty if side.startswith("sell") else -price * qty) - fee
    return total


def _active_trades_gauge() -> None:
    ACTIVE_TRADES.set(open_trades().filter(status=TradeStatus.OPEN).count())  # the account's


# --- the Ledger --------------------------------------------------------------------------------
_COMPILED: dict[tuple, tuple[str, tuple]] = {}


def _exists_read(key: tuple, querysets) -> tuple[bool, ...]:
    """SELECT EXISTS(q1), EXISTS(q2), ... of the querysets `querysets()` builds, in one round
    trip. Their SQL is compiled once per `key` (book, symbol: everything they depend on) and
    kept: at every bar and minute boundary the ORM's compile cost more than the query."""
    statement = _COMPILED.get(key)
    if statement is None:
        parts = [qs.order_by().values("id")[:1].query.sql_with_params() for qs in querysets()]
        sql = "SELECT " + ", ".join(f"EXISTS({part_sql})" for part_sql, _ in parts)
        statement = _COMPILED[key] = (sql, tuple(p for _, params in parts for p in params))
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        return tuple(bool(value) for value in cursor.fetchone())


def _planned_price(order) -> Decimal:
    """The price an entry was planned on: its signal's, else its own limit (0 if neither is
    known, so only the limit, if any, is reserved)."""
    signal = order.signal
    if signal is not None and signal.entry_price:
        return Decimal(signal.entry_price)
    return Decimal(order.price) if order.price is not None else ZERO


class OrmLedger:
    """The lifecycle's ledger over the database and a broker (live or paper).

    `lock` and `exposure_read` default to `risk.services.decision_lock` and
    `trading.selectors.exposure_snapshot`; callers may pass their own (the pipeline passes
    its module's names, which tests and fault scenarios replace). `book` is the one book it
    reads and writes (the account's unless told)."""

    def __init__(
        self,
        broker: Broker | None = None,
        *,
        book: str = Book.ACCOUNT,
        lock=None,
        exposure_read=None,
    ) -> None:
        self._broker = broker
        self.book = book
        self._lock = lock
        self._exposure_read = exposure_read
        # one query per bar tells whether a symbol has anything working (has_orders,
        # may_have_open, has_live); a write through this ledger makes it ask again
        self._writes = 0
        self._live_state: dict[str, tuple[int, bool, bool]] = {}

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            self._broker = broker_get()
        return self._broker

    @property
    def is_paper(self) -> bool:
        return self.broker.name == "paper"

    @property
    def resting_targets(self) -> bool:
        from django.conf import settings

        return bool(settings.RESTING_TARGETS)

    @property
    def partial_exit_pct(self) -> Decimal:
        from django.conf import settings

        return Decimal(str(settings.PARTIAL_EXIT_PCT))

    # --- reads --------------------------------------------------------------------------
    def live_trades(self, symbol: str | None = None) -> list:
        return list(open_trades(symbol=symbol, book=self.book))

    def decided_between(self, start: datetime, end: datetime) -> list:
        return list(
            Trade.objects.filter(
                created_at__gte=start, created_at__lte=end, book=self.book
            ).order_by("created_at", "id")
        )

    def working(self, trade, roles=None) -> list:
        return list(trade_orders(trade, roles=roles))

    def working_for_symbol(self, symbol: str, ts: datetime) -> list:
        return list(
            working_orders(symbol=symbol, broker="paper", book=self.book)
            .exclude(status=OrderStatus.NEW)
            .filter(created_at__lte=ts)
        )

    def entry_limits_before(self, before: datetime) -> list:
        return list(
            working_orders(book=self.book).filter(
                role=OrderRole.ENTRY,
                order_type=OrderType.LIMIT,
                order_class=OrderClass.EQUITY,
                created_at__lte=before,
            )
        )

    def _symbol_live(self, symbol: str) -> tuple[bool, bool]:
        """(working orders?, live trades?) of `symbol` in this book, in one round trip; asked
        again after any write through this ledger. An answer can only be stale towards True
        (a trade closed meanwhile), which costs the caller one empty read, never a skipped exit."""
        cached = self._live_state.get(symbol) or self._live_state.get(symbol.upper())
        if cached is not None and cached[0] == self._writes:
            return cached[1], cached[2]
        has_orders, has_trades = _exists_read(
            ("symbol", self.book, symbol.upper()),
            lambda: (
                working_orders(symbol=symbol, book=self.book),
                open_trades(symbol=symbol, book=self.book),
            ),
        )
        self._live_state[symbol] = (self._writes, bool(has_orders), bool(has_trades))
        return bool(has_orders), bool(has_trades)

    def live_state_prime(self, symbols: list[str]) -> None:
        """Read (working orders?, live trades?) of many symbols in ONE query, as
        `_symbol_live` would one by one (a batch of bars asks it once for all its symbols)."""
        symbols = sorted({symbol.upper() for symbol in symbols})
        if not symbols:
            return
        orders = working_orders(book=self.book).filter(symbol__in=symbols)
        trades = open_trades(book=self.book).filter(execution_symbol__in=symbols)
        with_orders = orders.order_by().values_list("symbol").distinct()
        with_trades = trades.order_by().values_list("execution_symbol").distinct()
        o_sql, o_params = with_orders.query.sql_with_params()
        t_sql, t_params = with_trades.query.sql_with_params()
        sql = f"SELECT 'o', o.* FROM ({o_sql}) o UNION ALL SELECT 't', t.* FROM ({t_sql}) t"
        held: dict[str, set[str]] = {"o": set(), "t": set()}
        with connection.cursor() as cursor:
            cursor.execute(sql, (*o_params, *t_params))
            for kind, symbol in cursor.fetchall():
                held[kind].add(symbol)
        for symbol in symbols:
            self._live_state[symbol] = (self._writes, symbol in held["o"], symbol in held["t"])

    def _wrote(self) -> None:
        self._writes += 1

    def has_orders(self, symbol: str) -> bool:
        """Paper fills come from bars: only when the symbol has a working order."""
        return self.is_paper and self._symbol_live(symbol)[0]

    def anything_alive(self) -> bool:
        """Any live trade or working order in this book (one round trip: it runs at every
        minute boundary of a replay)."""
        return any(_exists_read(("alive", self.book), self._alive_reads))

    def tick_read(self) -> tuple[bool, tuple | None]:
        """(anything_alive(), halt_resume()) in one round trip: a replay's clock tick asks
        both at every minute boundary, and at most of them nothing is alive and nothing is
        halted (a halt due to lift is then read in full, a second query)."""
        if self.book != Book.ACCOUNT:  # the paper book never halts the account
            return self.anything_alive(), None
        orders, trades, any_halt = _exists_read(
            ("tick", self.book), lambda: (*self._alive_reads(), self._halts())
        )
        return orders or trades, (self.halt_resume() if any_halt else None)

    def _alive_reads(self):
        return working_orders(book=self.book), open_trades(book=self.book)

    def working_stale(self, before: datetime) -> list:
        return list(
            working_orders(broker="paper", book=self.book)
            .exclude(status=OrderStatus.NEW)
            .filter(created_at__lte=before)
            .order_by("created_at", "id")
        )

    def last_bar(self, symbol: str, before: datetime):
        """(start, close) of the last stored bar of `symbol` starting before `before`."""
        from marketdata.models import Bar

        row = (
            Bar.objects.filter(symbol=symbol, ts__lt=before)
            .order_by("-ts", "provisional", "id")
            .values_list("ts", "close")
            .first()
        )
        return None if row is None else (row[0], Decimal(str(row[1])))

    def is_idle(self, symbol: str) -> bool:
        """Nothing of `symbol` is working or open in this book (the same cached read). False
        without asking again once this ledger wrote after the read: the step did something."""
        cached = self._live_state.get(symbol) or self._live_state.get(symbol.upper())
        if cached is not None and cached[0] != self._writes:
            return False
        return not any(self._symbol_live(symbol))

    def has_live(self, symbol: str) -> bool:
        return self._symbol_live(symbol)[1]

    def may_have_open(self, symbol: str) -> bool:
        return self._symbol_live(symbol)[1]

    def refresh(self, obj):
        obj.refresh_from_db()
        return obj

    def trade_lock(self, trade):
        return trade_lock(trade.pk)

    def trade_of(self, order, *, lock: bool = False):
        if not order.trade_id:
            return None
        rows = Trade.objects.select_for_update() if lock else Trade.objects
        return rows.get(pk=order.trade_id)

    def balances(self):
        try:
            b = self.broker.balances()
        except Exception:
            log.exception("balances unavailable; cash rules will block")
            return None
        return b.cash, b.buying_power

    def exposure(self, *, now: datetime):
        """Inside the decision lock: the balances, then the ledger's exposure."""
        from trading.selectors import exposure_snapshot

        balances = self.balances()
        read = self._exposure_read or exposure_snapshot
        return read(
            now=now,
            cash=balances[0] if balances else None,
            buying_power=balances[1] if balances else None,
            book=self.book,
        )

    def open_order_count(self) -> int:
        return working_orders(book=self.book).exclude(role__in=PROTECTIVE_ROLES).count()

    def position_notional(self) -> dict:
        return {
            symbol: abs(qty) * price
            for symbol, qty, price in Position.objects.filter(book=self.book)
            .exclude(qty=0)
            .values_list("symbol", "qty", "avg_price")
        }

    def pending_entries(self) -> list:
        """The unfilled part of every working entry order, with the price it was planned on
        (risk.exposure prices each at its worst fill plus fees)."""
        from risk.exposure import WorkingEntry

        rows = working_orders(book=self.book).filter(role=OrderRole.ENTRY).select_related("signal")
        return [
            WorkingEntry(
                symbol=order.symbol,
                qty=order.qty - order.filled_qty,
                limit_price=order.price,
                reference_price=_planned_price(order),
            )
            for order in rows
        ]

    def cost_model(self, symbol: str):
        """The symbol's cost model: the paper broker's account-wide one (the settings' live),
        with the symbol's override row applied."""
        costs = getattr(self.broker, "costs", None)
        return symbol_cost_model(symbol, costs.model if costs is not None else None)

    def realized_between(self, start: datetime, end: datetime) -> Decimal:
        return Trade.objects.filter(
            closed_at__gte=start, closed_at__lt=end, book=self.book
        ).aggregate(total=Coalesce(Sum("realized_pnl"), ZERO, output_field=_MONEY))["total"]

    def last_price(self, symbol: str):
        return (
            Position.objects.filter(symbol=symbol, book=self.book)
            .exclude(last_price=None)
            .values_list("last_price", flat=True)
            .first()
        )

    def trading_state(self) -> str:
        from risk.selectors import trading_state_get

        return trading_state_get().state

    def halt_in_force(self) -> bool:
        """The account: HALTED. The paper book has no halt of its own (its loss limit never
        halts the account, see `halt`): its kill switch is done once it holds nothing, whatever
        the account's state."""
        if self.book == Book.ACCOUNT:
            return self.trading_state() == "HALTED"
        return not self.anything_alive()

    def traded_in_window(self, start: datetime, end: datetime) -> int:
        from strategies.models import Signal

        return Signal.objects.filter(
            bar_ts__gte=start, bar_ts__lt=end, outcome__in=DECIDED_OUTCOMES, book=self.book
        ).count()

    def quote(self, symbol: str, ref: Decimal):
        """The quote the entry is planned on: the paper broker's synthetic spread around the
        signal's price, or the broker's live quote (none: a market entry, never a crash)."""
        if self.is_paper:
            return self.broker.quote_around(symbol, ref, self.cost_model(symbol))
        try:
            return self.broker.quote(symbol)
        except Exception:
            log.exception("quote for %s failed; entering at market", symbol)
            return None

    # --- writes -------------------------------------------------------------------------
    def decision_lock(self):
        if self._lock is not None:
            return self._lock()
        from risk.services import decision_lock

        return decision_lock()

    def atomic(self):
        return sending_atomic()  # the orders it places are sent once it has committed

    def place(self, trade, spec, *, now: datetime):
        self._wrote()
        order = order_create(
            symbol=trade.execution_symbol,
            side=spec.side,
            qty=spec.qty,
            order_type=spec.order_type,
            price=spec.price,
            stop=spec.stop,
            role=spec.role,
            tag=unique_tag(f"{trade_tag(trade)}-{spec.tag_suffix}"),
            trade=trade,
            signal=trade.signal,
            now=now,
            broker=self.broker,
            book=self.book,
        )
        return order_submit(order=order, now=now, broker=self.broker)

    def place_pair(self, trade, stop, target, *, now: datetime):
        """One OCO sent to the broker: the stop leg's row (the head, carrying both legs) and
        the limit leg's row (its child), committed before the broker is called."""
        self._wrote()
        symbol = trade.execution_symbol
        legs = [
            {"symbol": symbol, "side": stop.side, "qty": stop.qty, "order_type": OrderType.STOP,
             "price": None, "stop": str(to_cent(stop.stop))},
            {"symbol": symbol, "side": target.side, "qty": target.qty,
             "order_type": OrderType.LIMIT, "price": str(to_cent(target.price)), "stop": None},
        ]  # fmt: skip
        base = unique_tag(f"{trade_tag(trade)}-{stop.tag_suffix}")
        common = {"trade": trade, "signal": trade.signal, "order_class": OrderClass.OCO,
                  "now": now, "broker": self.broker, "book": self.book}  # fmt: skip
        head = order_create(
            symbol=symbol, side=stop.side, qty=stop.qty, order_type=OrderType.STOP,
            stop=stop.stop, role=stop.role, tag=base, legs=legs, **common,
        )  # fmt: skip
        order_create(
            symbol=symbol, side=target.side, qty=target.qty, order_type=OrderType.LIMIT,
            price=target.price, role=target.role, tag=unique_tag(f"{base}-{target.tag_suffix}"),
            parent=head, **common,
        )  # fmt: skip
        return order_submit(order=head, now=now, broker=self.broker)

    def cancel(self, order, *, now: datetime, cause: str) -> bool:
        return broker_cancel(order=order, now=now, cause=cause, broker=self.broker)

    def _modify_target(self, order) -> str:
        """The broker id a modify goes to: an OCO head's stop leg (read back once when the
        placement answer did not list the legs), else the order's own id."""
        if order.order_class != OrderClass.OCO or order.parent_id or self.is_paper:
            return order.broker_order_id
        leg_id = (order.legs or [{}])[0].get("id")
        if not leg_id:
            remote = self.broker.order(order.broker_order_id)
            pair_legs_link(order, remote.legs)
            leg_id = (order.legs or [{}])[0].get("id")
        if not leg_id:
            raise BrokerUnavailable(f"the stop leg of {order.tag} is not known yet")
        return leg_id

    def modify(self, order, *, now: datetime, stop=None, order_type=None) -> bool:
        """Move a stop's trigger, or turn an entry limit into a market order, at the broker
        (Tradier modify = replace) and then in the row. False when the broker refused."""
        changes = {"stop": to_cent(stop)} if stop is not None else {"order_type": order_type}
        if order.broker_order_id:
            try:
                self.broker.modify(self._modify_target(order), **changes)
            except BrokerError as exc:
                log.warning("modify of %s refused (%s)", order.tag, exc)
                return False
        if stop is not None:
            old, order.stop_price = order.stop_price, to_cent(stop)
            if order.order_class == OrderClass.OCO and order.legs:  # the pair's stop leg
                order.legs = [{**order.legs[0], "stop": str(order.stop_price)}, *order.legs[1:]]
            order.save(update_fields=["stop_price", "legs", "updated_at"])
            cause = f"stop moved {old} -> {order.stop_price}"
        else:
            old, order.order_type, order.price = order.price, order_type, None
            order.save(update_fields=["order_type", "price", "updated_at"])
            cause = f"entry limit {old} timed out: modified to {order_type}"
        OrderEvent.objects.create(
            order=order, from_status=order.status, to_status=order.status, cause=cause, at=now
        )
        return True

    def fill_record(self, order, *, qty, price, ts, fill_id, fee):
        self._wrote()
        return fill_record(
            order=order,
            qty=qty,
            price=price,
            ts=ts,
            fill_id=fill_id,
            fee=fee,
            cost_model=self.cost_model,
        )

    def bracket_activate(self, order, trade, *, now: datetime) -> None:
        """Tradier activates a bracket's legs itself; the paper book does it here and trims
        the legs to what is held after a partial entry fill."""
        for child in order.children.filter(status=OrderStatus.NEW):
            order_transition(child, OrderStatus.SUBMITTED, cause="parent filled", at=now)
            order_transition(child, OrderStatus.OPEN, cause="bracket leg active", at=now)
        self.bracket_trim(trade)

    def bracket_trim(self, trade) -> None:
        """Paper bracket legs sell exactly what is held (Tradier keeps its OCO legs in line
        itself): after a partial entry fill, and after a partial fill of the other leg."""
        for leg in trade_orders(trade, roles=PROTECTIVE_ROLES):
            wanted = leg.filled_qty + trade.remaining_qty
            if leg.qty != wanted and leg.broker == "paper" and leg.parent_id:
                leg.qty = wanted
                leg.save(update_fields=["qty", "updated_at"])

    def trade_set(self, trade, *, status: str | None = None, **fields) -> bool:
        """Change a trade's fields; its status only along the trade transition table (an
        illegal transition is refused, logged, and nothing is changed)."""
        moved = status is not None and status != trade.status
        if moved and not trade_can_transition(trade.status, status):
            log.warning(
                "trade %s: illegal transition %s -> %s refused (%s)",
                trade.pk,
                trade.status,
                status,
                fields.get("exit_reason", ""),
            )
            return False
        if moved:
            fields["status"] = status
        if not fields:
            return True
        self._wrote()
        for name, value in fields.items():
            setattr(trade, name, value)
        trade.save(update_fields=list(fields))
        if moved:
            _active_trades_gauge()
        return True

    def trade_open(self, candidate, plan, *, now: datetime):
        """The managed trade and its entry order rows (not yet sent). Called inside the
        decision lock, so the next decider counts this trade."""
        self._wrote()
        signal = candidate.ref
        trade = Trade.objects.create(
            signal=signal,
            setup=candidate.setup,
            book=self.book,
            symbol=candidate.symbol,
            execution_symbol=candidate.execution_symbol,
            side="buy",
            qty=plan.qty,
            remaining_qty=0,
            stop_price=plan.stop,
            initial_stop_price=plan.stop,
            target_one=plan.target_one,
            target_two=plan.target_two,
            trail_pct=plan.trail_pct,
            trail_act_pct=plan.trail_act_pct,
            deadline=plan.deadline,
            status=TradeStatus.PENDING,
            created_at=now,
        )
        legs = bracket_legs(
            candidate.execution_symbol, plan.qty, plan.entry_type, plan.entry_limit,
            plan.target_two, plan.stop,
        ) if plan.bracket else []  # fmt: skip
        entry = order_create(
            symbol=candidate.execution_symbol,
            side="buy",
            qty=plan.qty,
            order_type=plan.entry_type,
            price=plan.entry_limit,
            role=OrderRole.ENTRY,
            tag=unique_tag(signal.tag),
            trade=trade,
            signal=signal,
            order_class=OrderClass.OTOCO if plan.bracket else OrderClass.EQUITY,
            legs=legs,
            now=now,
            broker=self.broker,
            book=self.book,
        )
        entry.request_payload = {"entry_plan": plan.entry_why}
        entry.save(update_fields=["request_payload"])
        if plan.bracket:
            bracket_children_create(
                entry, trade, legs, base=trade_tag(trade), now=now, broker=self.broker,
                book=self.book,
            )  # fmt: skip
        return trade

    def entry_submit(self, trade, *, now: datetime):
        self._wrote()
        entries = trade_orders(trade, roles=[OrderRole.ENTRY])
        entry = entries.filter(status=OrderStatus.NEW).first()
        if entry is None:  # sent (or ended) meanwhile by a resumer: its state is the answer
            return entries.order_by("-pk").first()
        return order_submit(order=entry, now=now, broker=self.broker)

    def entry_sent(self, order, *, config) -> str:
        """Live: the pegged limit goes to market ENTRY_LIMIT_TIMEOUT_SEC after sending (a
        delayed task by name; the exit-manager tick is the fallback when tasks run
        in-process)."""
        from django.conf import settings

        if self.is_paper:
            return "dry_run"
        if (
            order.order_type == OrderType.LIMIT
            and order.is_working
            and not settings.CELERY_TASK_ALWAYS_EAGER
        ):
            from celery import current_app

            current_app.send_task(
                "trading.entry_escalate", args=[order.pk], countdown=config.entry_limit_timeout_sec
            )
        return "submitted"

    def entry_replacement(self, order, *, now: datetime):
        self._wrote()
        rest = order.qty - order.filled_qty
        if rest <= 0 or order.trade_id is None:
            return None
        return order_create(
            symbol=order.symbol,
            side=order.side,
            qty=rest,
            order_type=OrderType.MARKET,
            role=OrderRole.ENTRY,
            tag=unique_tag(f"{order.tag.removesuffix('-entry')}-mkt"),
            trade=order.trade,
            signal=order.signal,
            now=now,
            broker=self.broker,
            book=self.book,
        )

    def submit(self, order, *, now: datetime, qty: int | None = None):
        self._wrote()
        if qty is not None and qty != order.qty:
            order.qty = qty
            order.save(update_fields=["qty", "updated_at"])
        return order_submit(order=order, now=now, broker=self.broker)

    def signal_decided(self, candidate) -> str | None:
        """The stored outcome when another decider (the bar task, its retry or the scan's
        resume of an undecided signal) decided this signal first; None while it is open."""
        if candidate.ref is None:
            return None
        from strategies.models import Signal

        outcome = Signal.objects.filter(pk=candidate.ref.pk).values_list("outcome", flat=True)
        current = outcome.first()
        return None if current in (None, "generated") else current

    def signal_outcome(self, candidate, outcome: str, checks=None, qty=None) -> None:
        if candidate.ref is None:
            return
        from strategies import services as strategy_services

        strategy_services.signal_outcome_set(
            signal=candidate.ref, outcome=outcome, checks=checks, qty=qty
        )

    def mark(self, symbol: str, price: Decimal) -> None:
        """Mark a position to the latest price (unrealized P&L, day-loss limit)."""
        if Position.objects.filter(symbol=symbol, book=self.book).update(last_price=to_cent(price)):
            live_event_publish(kind="position")  # update() sends no post_save: tell the pages

    def halt(self, reason: str, *, now: datetime, resume_at=None, resume_state: str = "") -> None:
        """The account halts (until `resume_at`, then into `resume_state`, when given); the
        paper book's own loss limit never halts the account (its trades are flattened, and
        the risk rules refuse its new ones for the day)."""
        if self.book != Book.ACCOUNT:
            log.warning("paper book: %s (the account is not halted)", reason)
            return
        from risk.services import trading_state_set

        trading_state_set(
            state="HALTED",
            reason=reason,
            actor="kill-switch",
            resume_at=resume_at,
            resume_state=resume_state if resume_at else "",
        )

    def halt_resume(self):
        """(resume_at, resume_state) of the account's halt, None when not halted or the
        paper book (which never halts the account)."""
        halted = self._halts()
        if halted is None:
            return None
        row = halted.values_list("resume_at", "resume_state").first()
        return None if row is None else (row[0], row[1])

    def _halts(self):
        """The account's self-lifting halt rows (None for the paper book: it never halts the
        account)."""
        if self.book != Book.ACCOUNT:
            return None
        from risk.models import TradingState
        from risk.selectors import DEFAULT_ACCOUNT

        return TradingState.objects.filter(
            account=DEFAULT_ACCOUNT, state="HALTED", resume_at__isnull=False
        )

    def resume(self, *, due: datetime, reason: str) -> bool:
        from risk.services import trading_state_resume

        return trading_state_resume(due=due, reason=reason) is not None

    def flatten(self, *, reason: str, now: datetime) -> None:
        if self.book != Book.ACCOUNT:
            lifecycle.flatten_trades(self, reason=reason, now=now)
            return
        from trading.services.operations import positions_flatten

        positions_flatten(reason=reason, now=now)


def bracket_legs(symbol, qty, entry_type, entry_limit, target, stop) -> list[dict]:
    """The three legs of an OTOCO bracket: the entry, the target limit and the stop."""
    return [
        {
            "symbol": symbol,
            "side": "buy",
            "qty": qty,
            "order_type": entry_type,
            "price": str(entry_limit) if entry_limit else None,
            "stop": None,
        },
        {
            "symbol": symbol,
            "side": "sell",
            "qty": qty,
            "order_type": OrderType.LIMIT,
            "price": str(target),
            "stop": None,
        },
        {
            "symbol": symbol,
            "side": "sell",
            "qty": qty,
            "order_type": OrderType.STOP,
            "price": None,
            "stop": str(stop),
        },
    ]


def bracket_children_create(
    entry, trade, legs, *, base: str, now, broker, book: str = Book.ACCOUNT
) -> None:
    """The rows of a bracket's target and stop legs (they travel with the entry)."""
    for role, leg, suffix in (
        (OrderRole.TARGET_TWO, legs[1], "tp"),
        (OrderRole.STOP, legs[2], "stop"),
    ):
        order_create(
            symbol=leg["symbol"],
            side="sell",
            qty=leg["qty"],
            order_type=leg["order_type"],
            price=to_cent(leg["price"]),
            stop=to_cent(leg["stop"]),
            role=role,
            tag=unique_tag(f"{base}-{suffix}"),
            trade=trade,
            signal=trade.signal,
            parent=entry,
            order_class=OrderClass.OTOCO,
            now=now,
            broker=broker,
            book=book,
        )


__all__ = ["OrmLedger", "lifecycle"]
