"""Resting targets (RESTING_TARGETS=1): once any part of an entry fills, the trade is covered at
the broker by OCO pairs, a stop + T1 limit for the partial quantity and a stop + T2 limit for
the rest, so a target fills the moment it is touched and a stop works at all times. One rule
for every ledger: the live and paper ORM ledger and the backtests' memory ledger.

A pair is one broker order (class oco): its head row is the stop leg (role stop, the pair's
broker id), its child the limit leg (role target_one / target_two, `parent_id` = the head).
Without a target for a part, that part is a plain stop.

Rules kept here:
- every held share not already being sold by a working exit is under exactly one stop; a
  pair is kept only while both legs work for the same open quantity (a partly filled leg
  whose sibling the broker did not shrink is cancelled and its rest covered again);
- after T1 fills (any part), the stop is break-even: max(stop, entry), as the bar rule does;
- stop changes (break-even, trailing) modify the stop legs; resizing cancels a pair first
  and re-covers only what is left uncovered, so shares a kept pair covers are never bare;
- a leg that fills completely ends its pair: the broker cancels the sibling live; paper and
  backtests cancel it here (`sibling_done`), before the trade moves on.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from risk.sizing import partial_exit_qty
from trading.core.types import (
    EXIT_ROLES,
    PROTECTIVE_ROLES,
    OrderSpec,
    OrderState,
    Role,
    TradeState,
    to_cent,
)

OCO = "oco"


def enabled(ledger) -> bool:
    return bool(getattr(ledger, "resting_targets", False))


def stop_level(trade) -> Decimal:
    """The stop the pairs carry: the trade's, raised to break-even once T1 filled."""
    stop = trade.stop_price
    if trade.partial_done and trade.entry_price is not None:
        stop = max(stop, trade.entry_price)
    return to_cent(stop)


def siblings(order, other) -> bool:
    """`order` and `other` are the two legs of one OCO pair."""
    return order.order_class == OCO and (
        other.pk == order.parent_id or (other.parent_id == order.pk and other.pk != order.pk)
    )


def broker_cancels(ledger, order, other) -> bool:
    """Live, a completely filled pair leg's sibling is cancelled by the broker itself (its
    report follows): a cancel request of ours would only be refused."""
    return not ledger.is_paper and order.status == OrderState.FILLED and siblings(order, other)


def sibling_done(ledger, order, *, now: datetime) -> None:
    """Paper and backtests: a pair leg that filled completely cancels its sibling (Tradier
    does this itself live; its cancel reaches the ledger as an event or a read-back)."""
    if order.order_class != OCO or order.status != OrderState.FILLED or not ledger.is_paper:
        return
    trade = ledger.trade_of(order)
    if trade is None:
        return
    from trading.core import lifecycle

    for other in ledger.working(trade, PROTECTIVE_ROLES):
        if siblings(order, other):
            lifecycle.cancel(ledger, other, now=now, cause="oco: other leg filled")


def protect_resting(ledger, trade, *, now: datetime):
    """Make the broker-side pairs match the trade (see the module rules). Returns a working
    stop leg, or None when nothing needs covering."""
    from trading.core import lifecycle

    trade = ledger.refresh(trade)
    if trade.status != TradeState.OPEN or trade.remaining_qty <= 0:
        return None
    stop = stop_level(trade)
    if stop != to_cent(trade.stop_price):
        ledger.trade_set(trade, stop_price=stop)
    exiting = sum(o.qty - o.filled_qty for o in ledger.working(trade, EXIT_ROLES))
    held = trade.remaining_qty - exiting
    left = held
    legs = ledger.working(trade, PROTECTIVE_ROLES)
    heads = [o for o in legs if o.role == Role.STOP]
    children = {o.parent_id: o for o in legs if o.role != Role.STOP and o.parent_id}
    kept, t1_kept = [], 0

    def sound(head) -> bool:
        child = children.get(head.pk)
        if head.order_class != OCO:
            return child is None
        return child is not None and child.qty - child.filled_qty == head.qty - head.filled_qty

    # sound pairs first: a broken one (whose cancel may not be confirmed yet) never makes a
    # sound one look surplus
    for head in sorted(heads, key=lambda h: not sound(h)):
        open_qty = head.qty - head.filled_qty
        whole = sound(head)
        child = children.pop(head.pk, None)
        if not whole or open_qty > left:
            lifecycle.cancel(ledger, head, now=now, cause="resting pair resized")
            if ledger.refresh(head).is_working:  # cancel not confirmed: it still covers
                left -= open_qty
                continue
            if child is not None:  # the broker cancelled the pair; the ledger row follows
                lifecycle.cancel(ledger, child, now=now, cause="resting pair resized")
            continue
        left -= open_qty
        if child is not None and child.role == Role.TARGET_ONE:
            t1_kept += open_qty
        kept.append(head)
    for orphan in children.values():  # a target leg whose stop leg is gone
        lifecycle.cancel(ledger, orphan, now=now, cause="resting target without its stop")
    for head in kept:
        if head.stop_price != stop:
            lifecycle.stop_move(ledger, head, stop=stop, now=now)
    if left <= 0:
        return kept[0] if kept else None
    t1_qty = 0
    if trade.target_one is not None and not trade.partial_done:
        wanted = partial_exit_qty(held, Decimal(ledger.partial_exit_pct))
        t1_qty = max(0, min(wanted - t1_kept, left))
    placed = None
    for qty, target, role, name in (
        (t1_qty, trade.target_one, Role.TARGET_ONE, "t1"),
        (left - t1_qty, trade.target_two, Role.TARGET_TWO, "t2"),
    ):
        if qty < 1:
            continue
        stop_spec = OrderSpec(
            role=Role.STOP, side="sell", qty=qty, order_type="stop", stop=stop,
            tag_suffix=f"stop{name}",
        )  # fmt: skip
        if target is None:
            head = ledger.place(trade, stop_spec, now=now)
        else:
            limit_spec = OrderSpec(
                role=role, side="sell", qty=qty, order_type="limit", price=to_cent(target),
                tag_suffix=name, reason=role,
            )  # fmt: skip
            head = ledger.place_pair(trade, stop_spec, limit_spec, now=now)
        placed = placed or head
    return kept[0] if kept else placed
