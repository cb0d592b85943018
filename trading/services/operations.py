"""Operator and housekeeping actions: cancel all / stale orders, flatten, account snapshots,
worker heartbeats. Every action that bypasses or changes safety is audited."""

from __future__ import annotations

from datetime import datetime, timedelta

from autotrader_site.clock import clock
from strategies.models import Book
from trading.core import lifecycle
from trading.models import AuditEvent, OrderRole, OrderType, Position, TradeStatus
from trading.orm_ledger import OrmLedger, order_create, order_submit, unique_tag
from trading.selectors import PROTECTIVE_ROLES, open_trades, working_orders


def _user(user):
    return user if getattr(user, "pk", None) else None


def orders_cancel_all(
    *, symbol: str | None = None, include_protective: bool = False, now=None, user=None
) -> dict:
    """Cancel working orders (of `symbol`). Protective stops/targets of open trades are kept
    unless `include_protective` (flatten is the way out of a position)."""
    now = now or clock.now()
    ledger = OrmLedger()
    cancelled, kept = [], []
    for order in working_orders(symbol=symbol).order_by("id"):
        protective = order.role in PROTECTIVE_ROLES and order.trade_id
        if protective and not include_protective:
            kept.append(order.pk)
            continue
        lifecycle.cancel(ledger, order, now=now, cause="cancel all")
        cancelled.append(order.pk)
    if user is not None:
        AuditEvent.objects.create(
            action="orders_cancel_all",
            user=_user(user),
            details={"symbol": symbol, "cancelled": cancelled, "kept_protective": kept},
        )
    return {"cancelled": cancelled, "kept_protective": kept}


def orders_cancel_stale(*, minutes: int, now=None) -> dict:
    """Cancel non-protective working orders created more than `minutes` ago."""
    now = now or clock.now()
    ledger = OrmLedger()
    cutoff = now - timedelta(minutes=int(minutes))
    cancelled = []
    for order in working_orders().filter(created_at__lt=cutoff).exclude(role__in=PROTECTIVE_ROLES):
        lifecycle.cancel(ledger, order, now=now, cause=f"stale > {minutes} min")
        cancelled.append(order.pk)
    return {"cancelled": cancelled, "minutes": int(minutes)}


def positions_flatten(
    *, symbol: str | None = None, reason: str = "flatten", now=None, user=None
) -> dict:
    """Close every open trade (of `symbol`) at market and cancel their working entries; any
    position the trades do not explain (external) is closed too. Audited."""
    now = now or clock.now()
    ledger = OrmLedger()
    closed_trades, exits = lifecycle.flatten_trades(ledger, reason=reason, now=now, symbol=symbol)
    orders = [order.pk for order in exits]
    # Positions not covered by managed trades (adopted, manual).
    managed: dict[str, int] = {}
    for trade in open_trades(symbol=symbol).filter(status=TradeStatus.OPEN):
        managed[trade.execution_symbol] = (
            managed.get(trade.execution_symbol, 0) + trade.remaining_qty
        )
    positions = Position.objects.filter(book=Book.ACCOUNT).exclude(qty=0)
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
            tag=unique_tag(f"at-flatten-{position.symbol}-{now:%Y%m%d%H%M}"),
            now=now,
            broker=ledger.broker,
        )
        order_submit(order=order, now=now, broker=ledger.broker)
        orders.append(order.pk)
    AuditEvent.objects.create(
        action="positions_flatten",
        user=_user(user),
        details={"symbol": symbol, "reason": reason, "trades": closed_trades, "orders": orders},
    )
    return {"trades": closed_trades, "orders": orders}


def account_snapshot_take(*, now=None):
    """Store the broker's balances (beat job); the dashboard and risk read the latest."""
    from trading.brokers import broker_get
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


def heartbeat_record(*, name: str, now: datetime, info: dict | None = None):
    """A worker's sign of life for the health endpoint."""
    from trading.models import WorkerHeartbeat

    row, _ = WorkerHeartbeat.objects.update_or_create(
        name=name[:128], defaults={"at": now, "info": info or {}}
    )
    return row
