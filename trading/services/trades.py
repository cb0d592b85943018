"""Trades: fills into the ledger, protection, exits and entries of managed trades, each a
call of the lifecycle core (`trading.core.lifecycle`) over the ORM ledger."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from risk.config import RiskConfig
from trading.brokers.base import Broker
from trading.core import lifecycle
from trading.models import Fill, Order, Trade
from trading.orm_ledger import OrmLedger


def fill_apply(
    *,
    order: Order,
    qty: int,
    price: Decimal,
    ts: datetime,
    broker_fill_id: str,
    fee: Decimal | None = None,
) -> Fill | None:
    """Record one execution: the Fill row (once per broker fill id), the order's filled
    quantity, average price and status, the net position, and the managed trade. `fee` None
    (every broker report): the symbol's cost model prices it, as paper does, so live P&L, the
    kill switch and the ledger's cash count the same costs (`orm_ledger.broker_fill_fee`)."""
    return lifecycle.on_fill(
        OrmLedger(), order, qty=qty, price=price, ts=ts, fill_id=broker_fill_id, fee=fee
    )


def trade_protect(*, trade: Trade, now: datetime, broker: Broker | None = None) -> Order | None:
    """Exactly one working stop for the trade's remaining quantity (see lifecycle.protect)."""
    return lifecycle.protect(OrmLedger(broker), trade, now=now)


def trade_exit(
    *,
    trade: Trade,
    qty: int | None,
    reason: str,
    now: datetime,
    new_stop: Decimal | None = None,
    role: str = "exit",
    broker: Broker | None = None,
) -> Order | None:
    """Sell `qty` (None = all) of an open trade at market, keeping the rest protected."""
    return lifecycle.exit(
        OrmLedger(broker), trade, qty=qty, reason=reason, now=now, new_stop=new_stop, role=role
    )


def stop_move(*, order: Order, stop: Decimal, now: datetime, broker: Broker | None = None):
    """Move a working stop's trigger price at the broker (refused: cancel and re-protect)."""
    return lifecycle.stop_move(OrmLedger(broker), order, stop=stop, now=now)


def entries_escalate(*, now: datetime, config: RiskConfig, broker: Broker | None = None) -> int:
    """Replace pegged entry limits older than ENTRY_LIMIT_TIMEOUT_SEC by market orders for the
    unfilled rest. Returns how many were replaced."""
    return lifecycle.escalate_due(OrmLedger(broker), now=now, config=config)


def entry_limit_replace(*, order: Order, now: datetime, broker: Broker | None = None):
    """Turn a timed-out pegged entry limit into a market order (see lifecycle.entry_escalate)."""
    return lifecycle.entry_escalate(OrmLedger(broker), order, now=now)


def bar_mark(*, symbol: str, price: Decimal) -> None:
    """Mark a position to the latest price (unrealized P&L, day-loss limit)."""
    OrmLedger().mark(symbol, price)
