"""What happens when the broker kills a trade's protective stop after accepting it.

Tradier can answer 200 and reject (or expire) the order later. A filled position must not stay
unprotected until the next exit-manager tick, so the moment the death is applied (account event
or poll read-back): one immediate re-protect; if the trade's stop dies again, flatten the
trade's symbol at market, alert, and move trading to REDUCING (exits only) until a person looks.

A bracket's stop leg cannot be re-sent alone while its target leg rests (two resting sells of
the same shares could both fill): the target is cancelled first, then a plain stop covers the
rest (the exit manager handles the target on bars, as for any non-bracket trade).

Phase 2 moves this rule into the trade-lifecycle core (`order_dead`); until then it runs after
each applied account event and read-back (`trading.account_events`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from trading.models import Order, OrderRole, OrderStatus, Trade, TradeStatus

log = logging.getLogger(__name__)
DEAD = (OrderStatus.REJECTED, OrderStatus.EXPIRED)


def protection_check(*, order: Order, now: datetime) -> str:
    """Act on `order` if it is a dead protective stop of an open trade; returns the action:
    none, reprotected, flattened."""
    if order.role != OrderRole.STOP or not order.trade_id:
        return "none"  # cheap first: most events are not about stops
    order.refresh_from_db()
    if order.status not in DEAD:
        return "none"
    trade = Trade.objects.get(pk=order.trade_id)
    if trade.status != TradeStatus.OPEN or trade.remaining_qty <= 0:
        return "none"
    deaths = Order.objects.filter(trade=trade, role=OrderRole.STOP, status__in=DEAD).count()
    from trading import services

    reason = order.reject_reason or order.status
    if deaths <= 1:
        if order.parent_id:
            for sibling in order.parent.children.exclude(pk=order.pk).filter(
                status__in=(OrderStatus.OPEN, OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED)
            ):
                services.order_cancel(order=sibling, now=now, cause="bracket stop died")
        log.warning("protective stop %s %s at the broker: re-protecting now", order.tag, reason)
        services.trade_protect(trade=trade, now=now)
        return "reprotected"
    return _give_up(trade=trade, order=order, now=now, reason=reason)


def _give_up(*, trade: Trade, order: Order, now: datetime, reason: str) -> str:
    from risk.services import trading_state_set
    from trading import services
    from wiring.alerts import alert_send_background

    text = (
        f"{trade.execution_symbol}: protective stop {order.tag} {reason} again after one "
        "re-protect; flattening the symbol and switching to REDUCING"
    )
    log.error(text)
    services.positions_flatten(symbol=trade.execution_symbol, reason="protection_failed", now=now)
    trading_state_set(state="REDUCING", reason=text[:200], actor="protection_guard")
    alert_send_background("protection_failed", text, symbol=trade.execution_symbol)
    return "flattened"
