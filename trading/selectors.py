"""Reads of the trading ledger: working orders, open trades, positions, exposure, day P&L and
the last reconciliation."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, DecimalField, F, Q, Sum
from django.db.models.functions import Coalesce

from risk.calendar import NY
from risk.selectors import trading_state_get
from risk.types import Exposure
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


def working_orders(*, symbol: str | None = None, broker: str | None = None):
    qs = Order.objects.filter(status__in=WORKING_STATUSES)
    if symbol:
        qs = qs.filter(symbol=symbol.upper())
    if broker:
        qs = qs.filter(broker=broker)
    return qs


def open_trades(*, symbol: str | None = None):
    """Trades whose entry is working or whose position is open."""
    qs = Trade.objects.filter(status__in=LIVE_TRADE_STATUSES)
    if symbol:
        qs = qs.filter(execution_symbol=symbol.upper())
    return qs.order_by("created_at", "id")


def positions_list():
    return Position.objects.exclude(qty=0).order_by("symbol")


def session_start(now: datetime) -> datetime:
    """Midnight New York of `now`'s date, as the start of the trading day."""
    local = now.astimezone(NY)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def day_pnl(*, now: datetime) -> Decimal:
    """Realized P&L of trades closed today (New York date) plus the open trades' P&L marked
    at the last price."""
    start = session_start(now)
    realized = Trade.objects.filter(
        closed_at__gte=start, closed_at__lt=start + timedelta(days=1)
    ).aggregate(total=Coalesce(Sum("realized_pnl"), _ZERO, output_field=_MONEY))["total"]
    partial = Trade.objects.filter(status=TradeStatus.OPEN).aggregate(
        total=Coalesce(Sum("realized_pnl"), _ZERO, output_field=_MONEY)
    )["total"]
    unrealized = _ZERO
    prices = dict(Position.objects.exclude(last_price=None).values_list("symbol", "last_price"))
    for trade in Trade.objects.filter(status=TradeStatus.OPEN).exclude(entry_price=None):
        last = prices.get(trade.execution_symbol)
        if last is not None and trade.remaining_qty:
            unrealized += (last - trade.entry_price) * trade.remaining_qty
    return Decimal(realized) + Decimal(partial) + unrealized


def paper_cash() -> Decimal:
    """Starting paper cash plus sells minus buys minus fees of every paper fill."""
    flows = Fill.objects.filter(order__broker="paper").aggregate(
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
    *, now: datetime, cash: Decimal | None = None, buying_power: Decimal | None = None
) -> Exposure:
    """Everything the risk rules need, read from the ledger in one place."""
    live = open_trades()
    by_symbol = dict(
        live.values("execution_symbol").annotate(n=Count("id")).values_list("execution_symbol", "n")
    )
    notional = {
        symbol: abs(qty) * price
        for symbol, qty, price in Position.objects.exclude(qty=0).values_list(
            "symbol", "qty", "avg_price"
        )
    }
    open_orders = working_orders().exclude(role__in=PROTECTIVE_ROLES).count()
    return Exposure(
        open_trades=live.count(),
        open_orders=open_orders,
        trades_by_symbol=by_symbol,
        notional_by_symbol=notional,
        cash=cash,
        buying_power=buying_power,
        day_pnl=day_pnl(now=now),
        trading_state=trading_state_get().state,
    )


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
