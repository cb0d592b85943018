"""Reads of the trading ledger: working orders, open trades, positions, exposure, day P&L and
the last reconciliation."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import DecimalField, F, Q, Sum
from django.db.models.functions import Coalesce

from risk.types import Exposure
from strategies.models import Book
from trading.models import (
    WORKING_STATUSES,
    Fill,
    Order,
    OrderRole,
    Position,
    Trade,
    TradeStatus,
    WorkerHeartbeat,
)

PROTECTIVE_ROLES = (OrderRole.STOP, OrderRole.TARGET_ONE, OrderRole.TARGET_TWO)
LIVE_TRADE_STATUSES = (TradeStatus.PENDING, TradeStatus.OPEN)
RECONCILE_CACHE_KEY = "autotrader:reconcile:last"
_ZERO = Decimal("0")
_MONEY = DecimalField(max_digits=20, decimal_places=6)


def working_orders(
    *, symbol: str | None = None, broker: str | None = None, book: str = Book.ACCOUNT
):
    """Working orders of one book (the account's unless told; the paper book's never reach
    the broker of the account)."""
    qs = Order.objects.filter(status__in=WORKING_STATUSES, book=book)
    if symbol:
        qs = qs.filter(symbol=symbol.upper())
    if broker:
        qs = qs.filter(broker=broker)
    return qs


def open_trades(*, symbol: str | None = None, book: str = Book.ACCOUNT):
    """Trades of one book (the account's unless told) whose entry is working or whose
    position is open."""
    qs = Trade.objects.filter(status__in=LIVE_TRADE_STATUSES, book=book)
    if symbol:
        qs = qs.filter(execution_symbol=symbol.upper())
    return qs.order_by("created_at", "id")


def positions_open(*, book: str = Book.ACCOUNT):
    return Position.objects.filter(book=book).exclude(qty=0).order_by("symbol")


def positions_list() -> list[dict]:
    """Ledger positions with their open trades' stops (the protective plan)."""
    out = []
    for p in positions_open():
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


def account_balances() -> dict:
    """The broker's balances as plain values."""
    from trading.brokers import broker_get

    broker = broker_get()
    b = broker.balances()
    return {
        "broker": broker.name,
        "cash": str(b.cash),
        "equity": str(b.equity),
        "buying_power": None if b.buying_power is None else str(b.buying_power),
        "open_pnl": str(b.open_pnl),
        "day_pnl": None if b.day_pnl is None else str(b.day_pnl),
    }


def day_pnl(*, now: datetime) -> Decimal:
    """Realized P&L of trades closed today (New York date) plus the open trades' P&L marked
    at the last price (the rule: `trading.core.lifecycle.day_pnl`)."""
    from trading.core import lifecycle
    from trading.orm_ledger import OrmLedger

    return lifecycle.day_pnl(OrmLedger(), now=now)


def paper_cash(*, book: str = Book.ACCOUNT) -> Decimal:
    """Starting paper cash plus sells minus buys minus fees of every paper fill of the book
    (each book starts with PAPER_STARTING_CASH_USD)."""
    flows = Fill.objects.filter(order__broker="paper", order__book=book).aggregate(
        sells=Coalesce(
            Sum(F("qty") * F("price"), filter=Q(side__startswith="sell")),
            _ZERO,
            output_field=_MONEY,
        ),
        buys=Coalesce(
            Sum(F("qty") * F("price"), filter=Q(side__startswith="buy")), _ZERO, output_field=_MONEY
        ),
        fees=Coalesce(Sum("fee"), _ZERO, output_field=_MONEY),
    )
    return (
        Decimal(settings.PAPER_STARTING_CASH_USD)
        + Decimal(flows["sells"])
        - Decimal(flows["buys"])
        - Decimal(flows["fees"])
    )


def exposure_snapshot(
    *,
    now: datetime,
    cash: Decimal | None = None,
    buying_power: Decimal | None = None,
    book: str = Book.ACCOUNT,
) -> Exposure:
    """Everything the risk rules need, read from one book of the ledger in one place (the
    rule: `trading.core.lifecycle.exposure`). Call it inside the decision lock."""
    from trading.core import lifecycle
    from trading.orm_ledger import OrmLedger

    return lifecycle.exposure(OrmLedger(book=book), now=now, cash=cash, buying_power=buying_power)


def reconciliation_last() -> dict | None:
    """The last reconciliation run: {"at", "ok", "summary"} (None if never ran)."""
    return cache.get(RECONCILE_CACHE_KEY)


def worker_heartbeats():
    return WorkerHeartbeat.objects.order_by("-at")


def trade_orders(trade: Trade, *, roles=None, working: bool = True):
    qs = Order.objects.filter(trade=trade)
    if working:
        qs = qs.filter(status__in=WORKING_STATUSES)
    if roles:
        qs = qs.filter(role__in=roles)
    return qs.order_by("created_at", "id")
