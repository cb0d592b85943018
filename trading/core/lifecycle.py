"""The trade lifecycle over a `Ledger`: one implementation of every rule that moves a trade
from its signal to its last exit, for the live/paper ORM ledger and the backtests alike.

Safety rules every function keeps:
- an open trade always has a working protective stop for its remaining quantity; exits cancel
  or shrink that stop first and never sell more than the trade holds;
- only one exit order per trade is working at a time (a trade is never exited twice);
- a trade's status moves only along `states.TRADE_TRANSITIONS` (the ledger refuses the rest);
- exposure is read inside the decision lock, and a trade is recorded before the lock ends, so
  the next decider counts it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from risk import rules
from risk.config import RiskConfig, SymbolParams
from risk.types import Exposure, Intent
from trading.core import resting
from trading.core.entries import bracket_levels, trade_plan
from trading.core.exits import ExitState, exit_decide
from trading.core.fills import BarPrices, FillCosts, bar_fills, entry_limit_span
from trading.core.types import (
    BUY_SIDES,
    EXIT_ROLES,
    FOUR,
    PROTECTIVE_ROLES,
    ZERO,
    Candidate,
    OrderSpec,
    OrderState,
    Role,
    TradeState,
    to_cent,
)

log = logging.getLogger(__name__)
NY = ZoneInfo("America/New_York")
BAR = timedelta(minutes=1)
# A market order whose symbol printed no bar this long after it was placed fills at the last
# close: the bar of the minute it was placed in (published at that minute's end, a little later
# live) gets a whole minute of grace before the clock gives up on it.
BARLESS_AFTER = 2 * BAR
MAX_FILL_ROUNDS = 6  # fills can create orders that fill on the same bar (a stop after an entry)
REASON_OF_ROLE = {Role.STOP: "stop", Role.TARGET_ONE: "target_one", Role.TARGET_TWO: "target_two"}
TRADED_OUTCOMES = ("approved", "dry_run", "submitted")


def _check(stage: str, code: str, passed: bool, message: str) -> dict:
    return {"stage": stage, "code": code, "passed": passed, "message": message}


# --- orders ending -----------------------------------------------------------------------------
def cancel(ledger, order, *, now: datetime, cause: str) -> bool:
    """Cancel a working order; an entry that never filled takes its trade with it."""
    done = ledger.cancel(order, now=now, cause=cause)
    if done and order.role == Role.ENTRY and order.trade_id:
        order_dead(ledger, order, now=now, reason="entry_cancelled")
    return done


def order_dead(ledger, order, *, now: datetime, reason: str) -> None:
    """An entry order ended without (more) fills: a trade with nothing filled and no other
    working entry is cancelled."""
    trade = ledger.trade_of(order)
    if trade is None:
        return
    if (
        trade.status == TradeState.PENDING
        and trade.remaining_qty == 0
        and not ledger.working(trade, (Role.ENTRY,))
    ):
        trade_close(ledger, trade, now=now, status=TradeState.CANCELLED, reason=reason)


def trade_close(ledger, trade, *, now: datetime, status: str, reason: str) -> bool:
    return ledger.trade_set(
        trade, status=status, closed_at=now, exit_reason=trade.exit_reason or reason
    )


# --- fills -------------------------------------------------------------------------------------
def on_fill(ledger, order, *, qty: int, price: Decimal, ts: datetime, fill_id: str, fee=ZERO):
    """Record one execution (once per fill id) and move its trade: an entry fill opens or adds
    to the trade and protects it; an exit fill books the P&L (fees included), closes the trade
    when nothing is left, and re-protects the rest after a protective leg's partial fill.
    `fee` None: the ledger books the symbol's cost-model fee of the fill as recorded (a broker's
    fill: its quantity and first-fill flag are only known under the order's lock). Returns the
    ledger's fill record (its `fee` is what was booked), or None when nothing was applied."""
    with ledger.atomic():
        fill = ledger.fill_record(order, qty=qty, price=price, ts=ts, fill_id=fill_id, fee=fee)
        if fill is None:
            return None
        order = fill.order
        booked = Decimal(fill.fee)
        trade = ledger.trade_of(order, lock=True)
        if trade is not None:
            if order.side in BUY_SIDES:
                _entry_filled(ledger, trade, order, fill.qty, fill.price, booked, ts)
            else:
                _exit_filled(ledger, trade, order, fill.qty, fill.price, booked, ts)
    return fill


def _entry_filled(ledger, trade, order, qty: int, price: Decimal, fee: Decimal, ts) -> None:
    held = trade.remaining_qty
    entry = trade.entry_price or ZERO
    fields = {
        "entry_price": ((entry * held + price * qty) / (held + qty)).quantize(FOUR),
        "remaining_qty": held + qty,
    }
    if fee:
        fields["realized_pnl"] = trade.realized_pnl - fee
    status = None
    if trade.status == TradeState.PENDING:
        status = TradeState.OPEN
        fields.update(opened_at=ts, trail_high=price)
        if order.order_class != "otoco":  # a bracket's legs are priced at the broker
            fields.update(_levels_on_fill(trade, price))
    ledger.trade_set(trade, status=status, **fields)
    if order.order_class == "otoco":
        ledger.bracket_activate(order, trade, now=ts)  # the legs travel with the entry
    else:
        protect(ledger, trade, now=ts)


def _levels_on_fill(trade, fill: Decimal) -> dict:
    """Stop, T1 and T2 moved by (first fill - the price the trade was planned on)
    (`risk.sizing.levels_reanchor`): the distances sizing and the setup planned hold from the
    price actually paid. Nothing moves when the planned price is unknown."""
    from risk.sizing import levels_reanchor

    reference = _reference_price(trade)
    if reference is None or trade.stop_price is None:
        return {}
    levels = levels_reanchor(
        reference=reference,
        fill=Decimal(fill),
        stop=trade.stop_price,
        target_one=trade.target_one,
        target_two=trade.target_two,
    )
    return {
        "stop_price": levels.stop,
        "target_one": levels.target_one,
        "target_two": levels.target_two,
    }


def _exit_filled(ledger, trade, order, qty: int, price: Decimal, fee: Decimal, ts) -> None:
    entry = trade.entry_price or price
    fields = {
        "realized_pnl": trade.realized_pnl + (price - entry) * qty - fee,
        "remaining_qty": max(0, trade.remaining_qty - qty),
    }
    if order.role == Role.TARGET_ONE:
        fields["partial_done"] = True
    ledger.trade_set(trade, **fields)
    resting.sibling_done(ledger, order, now=ts)  # paper: a filled pair leg ends its pair
    if trade.remaining_qty == 0:
        reason = trade.exit_reason or REASON_OF_ROLE.get(order.role, order.role)
        for other in ledger.working(trade):
            if other.pk != order.pk and not resting.broker_cancels(ledger, order, other):
                cancel(ledger, other, now=ts, cause="trade closed")
        trade_close(ledger, trade, now=ts, status=TradeState.CLOSED, reason=reason)
    elif order.role in PROTECTIVE_ROLES:
        # one leg of an OCO pair filled in part: keep the rest consistent
        protect(ledger, trade, now=ts)


def _is_pegged_entry(order) -> bool:
    return (
        order.role == Role.ENTRY and order.order_type == "limit" and order.order_class == "equity"
    )


def fills_on_bar(
    ledger, *, symbol: str, bar: BarPrices, ts: datetime, costs: FillCosts, limit_timeout
) -> int:
    """Paper fills of `symbol`'s working orders on the bar starting at `ts` (orders placed up
    to the bar's start), in the conservative intrabar order, priced by `costs` (the symbol's
    cost model). A pegged entry limit is judged on the part of the bar it lives for
    (`fills.entry_limit_span`: only the open when its ENTRY_LIMIT_TIMEOUT_SEC ends inside the
    bar) and, unfilled, goes to market on that bar. Orders created meanwhile (a stop after an
    entry, the market order of a timed-out limit) are eligible on the same bar. Returns the
    number of fills."""
    bar_end = ts + BAR

    def span(order) -> BarPrices:
        if not _is_pegged_entry(order):
            return bar
        return entry_limit_span(bar, created_at=order.created_at, bar_start=ts,
                                timeout=limit_timeout)  # fmt: skip

    count = 0
    filled_on_bar: dict = {}  # the volume cap holds per order over the whole bar
    for _ in range(MAX_FILL_ROUNDS):
        eligible = ledger.working_for_symbol(symbol, ts)
        if not eligible:
            break
        fills = bar_fills(eligible, bar, costs, filled_on_bar, span=span)
        applied = 0
        for order, qty, price in fills:
            applied += _paper_fill(ledger, order, qty, price, ts, costs, filled_on_bar)
        filled = {order.pk for order, _, _ in fills}
        replaced = 0
        for order in eligible:
            if (
                order.pk not in filled
                and _is_pegged_entry(order)
                and order.created_at + limit_timeout < bar_end
            ):
                replaced += entry_escalate(ledger, order, now=ts) is not None
        count += applied
        if not applied and not replaced:
            break
    return count


def _paper_fill(ledger, order, qty, price, ts, costs: FillCosts, filled_on_bar: dict) -> int:
    """Apply one paper fill (fees of the cost model); 1 when it was applied."""
    order = ledger.refresh(order)
    if not order.is_working:
        return 0
    qty = min(qty, order.qty - order.filled_qty)
    fee = costs.fee(order.side, qty, price, first_fill=order.filled_qty == 0)
    fill_id = f"{order.broker_order_id}-{ts:%Y%m%d%H%M}-{order.filled_qty}"
    fill = on_fill(ledger, order, qty=qty, price=price, ts=ts, fill_id=fill_id, fee=fee)
    if not fill:
        return 0
    filled_on_bar[order.pk] = filled_on_bar.get(order.pk, 0) + fill.qty
    return 1


def fills_without_bar(ledger, *, now: datetime, costs_for, limit_timeout: timedelta) -> int:
    """Paper, on the clock: a market order (or a pegged entry limit past its timeout) whose
    symbol printed no bar since the order was placed, BARLESS_AFTER (two minutes) ago, fills at
    the symbol's last close priced by the cost model (`costs_for(symbol)`), at `now`: live, a
    market order
    fills within seconds whether or not a bar is published, and the last price is the best
    estimate there is. A feed that stops cannot leave an exit (or the session-close flatten)
    working forever. Stops and exit limits need a price that reaches them: they wait."""
    count = 0
    for order in ledger.working_stale(now - BARLESS_AFTER):
        if order.order_type != "market" and not (
            _is_pegged_entry(order) and order.created_at + limit_timeout < now
        ):
            continue
        last = ledger.last_bar(order.symbol, now)
        if last is None or last[0] >= order.created_at:
            continue  # a bar came: the bar rules filled it (or a volume cap holds it)
        if order.order_type != "market":
            order = entry_escalate(ledger, order, now=now)
            if order is None or order.order_type != "market":
                continue
        costs = costs_for(order.symbol)
        price = costs.model.market_fill(order.side, Decimal(last[1]))
        count += _paper_fill(ledger, order, order.qty - order.filled_qty, price, now, costs, {})
    return count


# --- protection and exits ----------------------------------------------------------------------
def protect(ledger, trade, *, now: datetime):
    """Make sure an open trade has exactly one working stop for its remaining quantity at
    `trade.stop_price` (minus what a working exit or T1 order already sells). Same quantity,
    new price -> modify; different quantity -> cancel and replace. A broker bracket's OCO legs
    cover the quantity themselves: only its stop price may move. With RESTING_TARGETS the
    cover is OCO pairs at the broker (`resting.protect_resting`)."""
    trade = ledger.refresh(trade)
    if trade.status != TradeState.OPEN or trade.remaining_qty <= 0:
        return None
    exiting = sum(
        o.qty - o.filled_qty for o in ledger.working(trade, EXIT_ROLES + (Role.TARGET_ONE,))
    )
    needed = trade.remaining_qty - exiting
    stops = ledger.working(trade, (Role.STOP,))
    targets = ledger.working(trade, (Role.TARGET_TWO,))
    if targets and stops and stops[0].parent_id:
        ledger.bracket_trim(trade)  # after a partial fill of one leg, the other covers the rest
        if stops[0].stop_price != to_cent(trade.stop_price):
            stop_move(ledger, stops[0], stop=trade.stop_price, now=now)
        return stops[0]
    if resting.enabled(ledger):
        return resting.protect_resting(ledger, trade, now=now)
    keep = None
    for stop in stops:
        if keep is None and stop.qty - stop.filled_qty == needed and needed > 0:
            keep = stop
            continue
        cancel(ledger, stop, now=now, cause="stop resized")
    if needed <= 0:
        return None
    if keep is not None:
        if keep.stop_price != to_cent(trade.stop_price):
            stop_move(ledger, keep, stop=trade.stop_price, now=now)
        return keep
    spec = OrderSpec(
        role=Role.STOP,
        side="sell",
        qty=needed,
        order_type="stop",
        stop=to_cent(trade.stop_price),
        tag_suffix="stop",
    )
    return ledger.place(trade, spec, now=now)


def stop_move(ledger, order, *, stop: Decimal, now: datetime):
    """Move a working stop's trigger; if the broker refuses, cancel it and re-protect."""
    if ledger.modify(order, now=now, stop=to_cent(stop)):
        return order
    cancel(ledger, order, now=now, cause="modify failed")
    trade = ledger.trade_of(order)
    if trade is not None:
        return protect(ledger, trade, now=now) or order
    return order


def exit(
    ledger,
    trade,
    *,
    qty: int | None,
    reason: str,
    now: datetime,
    new_stop: Decimal | None = None,
    role: str = Role.EXIT,
):
    """Sell `qty` (None = all) of an open trade at market, keeping the rest protected. Never
    exits twice; the protective legs are cancelled first (and must be gone: a live cancel not
    yet confirmed retries later) and, for a partial exit, the stop is re-placed for the rest
    at `new_stop` (or the current stop)."""
    trade = ledger.refresh(trade)
    if trade.status != TradeState.OPEN or trade.remaining_qty <= 0:
        return None
    if ledger.working(trade, EXIT_ROLES):
        return None
    qty = trade.remaining_qty if qty is None else min(int(qty), trade.remaining_qty)
    if qty <= 0:
        return None
    full = qty >= trade.remaining_qty
    for leg in ledger.working(trade, PROTECTIVE_ROLES):
        cancel(ledger, leg, now=now, cause=f"exit: {reason}")
    trade = ledger.refresh(trade)
    if trade.status != TradeState.OPEN or trade.remaining_qty <= 0:
        return None  # a leg filled while we cancelled: the trade is already out
    if ledger.working(trade, PROTECTIVE_ROLES):
        log.warning("trade %s: protective legs not cancelled yet; exit retried later", trade.pk)
        return None  # selling now could sell twice
    qty = min(qty, trade.remaining_qty)
    fields = {}
    if full:
        fields["exit_reason"] = reason
    if new_stop is not None:
        fields["stop_price"] = to_cent(new_stop)
    ledger.trade_set(trade, **fields)
    spec = OrderSpec(
        role=role,
        side="sell",
        qty=qty,
        order_type="market",
        tag_suffix=reason.replace("_", "")[:12],
        reason=reason,
    )
    order = ledger.place(trade, spec, now=now)
    if not full:
        protect(ledger, trade, now=now)
    return order


def manage_exits(
    ledger,
    *,
    now: datetime,
    symbol: str | None,
    bar: BarPrices | None,
    flat_at: datetime | None,
    partial_exit_pct: Decimal,
    cross_down=None,
) -> list[tuple[int, str]]:
    """Apply the exit rules (`exits.exit_decide`) to every open trade executing in `symbol`
    (all when None) and keep each protected. `cross_down(signal_symbol)` says whether its
    ema_20 crossed below ema_50 on this bar. Returns [(trade id, action)]: "checked" for every
    trade looked at, then each action taken."""
    done: list[tuple[int, str]] = []
    for trade in [t for t in ledger.live_trades(symbol) if t.status == TradeState.OPEN]:
        # one exit manager per trade at a time (the beat's tick and a bar's step run on
        # different processes); what the other did is read again under the lock
        with ledger.trade_lock(trade):
            trade = ledger.refresh(trade)
            if trade.status != TradeState.OPEN:
                continue
            done.append((trade.pk, "checked"))
            done.extend(
                _trade_manage(
                    ledger, trade, now=now, bar=bar, flat_at=flat_at,
                    partial_exit_pct=partial_exit_pct, cross_down=cross_down,
                )
            )  # fmt: skip
    return done


def _trade_manage(
    ledger, trade, *, now, bar, flat_at, partial_exit_pct, cross_down
) -> list[tuple[int, str]]:
    """The exit rules and the protection of one open trade (its lock held)."""
    done: list[tuple[int, str]] = []
    legs = ledger.working(trade, PROTECTIVE_ROLES)
    state = ExitState(
        remaining_qty=trade.remaining_qty,
        entry_price=trade.entry_price,
        stop_price=trade.stop_price,
        target_one=trade.target_one,
        target_two=trade.target_two,
        partial_done=trade.partial_done,
        trail_pct=trade.trail_pct,
        trail_act_pct=trade.trail_act_pct,
        trail_high=trade.trail_high,
        trail_active=trade.trail_active,
        deadline=trade.deadline,
        # targets resting at the broker (a bracket, or OCO pairs) fill there, not on bars
        bracket=any(o.parent_id for o in legs) or resting.enabled(ledger),
    )
    cross = bar is not None and cross_down is not None and cross_down(trade.symbol)
    action = exit_decide(
        state,
        now=now,
        bar=bar,
        flat_at=flat_at,
        partial_exit_pct=partial_exit_pct,
        ema_cross_down=cross,
    )
    if (action.trail_high, action.trail_active, action.partial_done) != (
        trade.trail_high,
        trade.trail_active,
        trade.partial_done,
    ):
        ledger.trade_set(
            trade,
            trail_high=action.trail_high,
            trail_active=action.trail_active,
            partial_done=action.partial_done,
        )
    if action.kind == "full":
        if exit(ledger, trade, qty=None, reason=action.reason, now=now):
            done.append((trade.pk, action.reason))
    elif action.kind == "partial":
        if exit(
            ledger, trade, qty=action.qty, reason=action.reason, now=now,
            new_stop=action.new_stop,
        ):  # fmt: skip
            done.append((trade.pk, action.reason))
    elif action.kind == "stop":
        ledger.trade_set(trade, stop_price=action.new_stop)
        protect(ledger, trade, now=now)
        done.append((trade.pk, f"stop->{action.new_stop}"))
    elif not ledger.working(trade, (Role.STOP,)) and not ledger.working(trade, EXIT_ROLES):
        log.warning("trade %s had no working stop: re-protecting", trade.pk)
        protect(ledger, trade, now=now)
        done.append((trade.pk, "protected"))
    return done


# --- entries -----------------------------------------------------------------------------------
def entry_escalate(ledger, order, *, now: datetime):
    """A pegged entry limit whose ENTRY_LIMIT_TIMEOUT_SEC passed becomes a market order for
    its unfilled rest: a modify of the same order (same tag, one order per signal). When the
    broker refuses the modify, a market replacement is recorded FIRST (inside the decision
    lock) and only then the limit is cancelled: the trade stays pending throughout, so no
    exposure snapshot ever misses it. Returns the working market order, or None."""
    order = ledger.refresh(order)
    if not order.is_working or order.order_type != "limit":
        return None
    if ledger.modify(order, now=now, order_type="market"):
        return order
    log.warning("entry %s: modify to market refused; cancel and replace", order.pk)
    with ledger.decision_lock():
        replacement = ledger.entry_replacement(order, now=now)
    if replacement is None:
        return None
    cancelled = ledger.cancel(order, now=now, cause="entry limit timeout: replaced by market")
    order = ledger.refresh(order)
    rest = order.qty - order.filled_qty
    if not cancelled or rest <= 0:
        cancel(ledger, replacement, now=now, cause="replacement not needed")
        return None
    return ledger.submit(replacement, now=now, qty=rest)


def escalate_due(ledger, *, now: datetime, config: RiskConfig) -> int:
    """Live: every working pegged entry limit older than ENTRY_LIMIT_TIMEOUT_SEC goes to
    market (the clock rule; paper and backtests apply it per bar in `fills_on_bar`)."""
    before = now - timedelta(seconds=config.entry_limit_timeout_sec)
    return sum(
        entry_escalate(ledger, order, now=now) is not None
        for order in ledger.entry_limits_before(before)
    )


def exposure(
    ledger,
    *,
    now: datetime,
    cash=None,
    buying_power=None,
    with_day_pnl=True,
    idea_window_sec: int | None = None,
):
    """Everything the risk rules read, from the ledger in one place (call it inside the
    decision lock): live trades, working non-protective orders, position notional, and the
    money-safety fields of risk.exposure (what working entries reserve at their worst fill plus
    fees, ideas in flight, what live trades lose if stopped), day P&L, state. Every symbol is
    priced with its own cost model (`ledger.cost_model`)."""
    from risk.exposure import money_exposure

    if idea_window_sec is None:
        from django.conf import settings

        idea_window_sec = settings.RISK_IDEA_WINDOW_SEC
    models: dict = {}

    def costs_for(symbol: str):
        if symbol not in models:
            models[symbol] = ledger.cost_model(symbol)
        return models[symbol]

    trades = ledger.live_trades()
    by_symbol: dict[str, int] = {}
    for trade in trades:
        by_symbol[trade.execution_symbol] = by_symbol.get(trade.execution_symbol, 0) + 1
    return Exposure(
        open_trades=len(trades),
        open_orders=ledger.open_order_count(),
        trades_by_symbol=by_symbol,
        notional_by_symbol=ledger.position_notional(),
        cash=cash,
        buying_power=buying_power,
        day_pnl=day_pnl(ledger, now=now) if with_day_pnl else ZERO,
        trading_state=ledger.trading_state(),
        **money_exposure(
            now=now,
            working_entries=ledger.pending_entries(),
            idea_rows=_idea_rows(ledger, trades, now=now, window_sec=idea_window_sec),
            live_trades=_live_trade_rows(trades, costs_for),
            window_sec=idea_window_sec,
            costs_for=costs_for,
        ),
    )


def _idea_rows(ledger, live, *, now: datetime, window_sec: int) -> list:
    """risk.exposure.IdeaRow of the live trades and of the trades decided within the window
    before `now` (never after it: a replay of an earlier day must not see a later run's
    trades)."""
    from risk.exposure import IdeaRow

    live_ids = {id(t) for t in live}
    live_pks = {getattr(t, "pk", None) for t in live} - {None}
    rows = [IdeaRow(t.setup, t.execution_symbol, t.created_at, True) for t in live]
    for t in ledger.decided_between(now - timedelta(seconds=window_sec), now):
        if id(t) in live_ids or getattr(t, "pk", None) in live_pks:
            continue
        rows.append(IdeaRow(t.setup, t.execution_symbol, t.created_at, False))
    return rows


def _reference_price(trade) -> Decimal | None:
    """The price a trade was planned on: its signal's (ORM row) or candidate's (backtest)."""
    for holder, name in (("signal", "entry_price"), ("candidate", "entry")):
        value = getattr(getattr(trade, holder, None), name, None)
        if value is not None:
            return Decimal(value)
    return None


def _live_trade_rows(trades, costs_for) -> list:
    """risk.exposure.LiveTrade of the live trades: open ones at their fill and remaining qty,
    pending ones at the worst-case market fill of their reference price."""
    from risk.exposure import LiveTrade

    rows = []
    for trade in trades:
        if trade.status == TradeState.OPEN and trade.entry_price is not None:
            qty, entry = trade.remaining_qty, Decimal(trade.entry_price)
        else:
            ref = _reference_price(trade)
            if ref is None:
                continue
            costs = costs_for(trade.execution_symbol.upper())
            qty, entry = trade.qty, costs.market_fill("buy", ref)
        stop = None if trade.stop_price is None else Decimal(trade.stop_price)
        rows.append(LiveTrade(trade.execution_symbol, qty, entry, stop))
    return rows


def day_start(now: datetime) -> datetime:
    """Midnight New York of `now`'s date: the start of the trading day."""
    return now.astimezone(NY).replace(hour=0, minute=0, second=0, microsecond=0)


def day_pnl(ledger, *, now: datetime) -> Decimal:
    """Realized P&L of trades closed today (New York date), plus the open trades' realized
    part and their unrealized P&L at the last price."""
    start = day_start(now)
    total = Decimal(ledger.realized_between(start, start + timedelta(days=1)))
    for trade in ledger.live_trades():
        if trade.status != TradeState.OPEN:
            continue
        total += trade.realized_pnl
        last = ledger.last_price(trade.execution_symbol)
        if last is not None and trade.entry_price is not None and trade.remaining_qty:
            total += (last - trade.entry_price) * trade.remaining_qty
    return total


def kill_switch(ledger, *, now: datetime, config: RiskConfig) -> bool:
    """Daily loss limit: when today's P&L reaches -RISK_MAX_DAILY_LOSS_USD, HALT and flatten.
    The halt is a day's: it lifts at the next trading day's open (`halt_lift`) back into the
    state it replaced. Returns True when it fired now."""
    limit = config.max_daily_loss_usd
    if limit <= 0:
        return False
    pnl = day_pnl(ledger, now=now)
    if pnl > -limit:
        return False
    if ledger.halt_in_force():  # per book: the paper book is flattened even when the account
        return False  # is HALTED (it reads the account's trading state otherwise)
    from risk.calendar import next_day_open

    state = ledger.trading_state()
    ledger.halt(
        f"daily loss limit: day P&L {pnl:.2f} <= -{limit}",
        now=now,
        resume_at=next_day_open(now),
        resume_state=state,
    )
    ledger.flatten(reason="kill_switch", now=now)
    return True


_UNREAD = object()


def halt_lift(ledger, *, now: datetime, plan=_UNREAD) -> bool:
    """A self-lifting halt (the daily loss limit's) whose resume time has come ends: the
    account goes back to the state it replaced. A halt without a resume time (an
    operator's kill switch, the start-up reconciliation's) stays. Returns True when lifted.
    `plan`: the ledger's halt_resume() when the caller has just read it."""
    if plan is _UNREAD:
        plan = ledger.halt_resume()
    if plan is None or plan[0] is None or plan[0] > now:
        return False
    return ledger.resume(due=now, reason=f"daily loss halt lifted at the session open {plan[0]}")


def flatten_trades(ledger, *, reason: str, now: datetime, symbol: str | None = None):
    """Close every live trade (of `symbol`): cancel its working entries, sell what is held at
    market. Returns (trade ids, exit orders)."""
    trades, orders = [], []
    for trade in ledger.live_trades(symbol):
        for entry in ledger.working(trade, (Role.ENTRY,)):
            cancel(ledger, entry, now=now, cause=reason)
        trade = ledger.refresh(trade)
        if trade.status == TradeState.OPEN:
            order = exit(ledger, trade, qty=None, reason=reason, now=now, role=Role.FLATTEN)
            if order is not None:
                orders.append(order)
        trades.append(trade.pk)
    return trades, orders


def _policy_recount(ledger, candidate: Candidate) -> dict | None:
    """A session policy's max_trades, counted again inside the decision lock (the strategy
    stage counted before it, outside): the failed check, or None."""
    if candidate.policy_limit is None:
        return None
    start, end, max_trades = candidate.policy_limit
    if max_trades is None:
        return None
    traded = ledger.traded_in_window(start, end)
    if traded < max_trades:
        return None
    return _check(
        "policy",
        "POLICY_MAX_TRADES",
        False,
        f"{traded} trades in the policy window (max {max_trades}), counted at decision",
    )


def signal_decide(
    ledger, candidate: Candidate, *, now: datetime, config: RiskConfig, params: SymbolParams
) -> str:
    """Risk-check one fired setup and, if approved, open its trade and send the entry.
    Under the decision lock: exposure -> policy re-count -> risk rules -> trade recorded.
    Returns the outcome (risk_blocked, policy_blocked, failed, dry_run, submitted)."""
    if candidate.entry is None:
        checks = [_check("risk", "NO_PRICE", False, "signal has no entry price")]
        ledger.signal_outcome(candidate, "risk_blocked", checks, qty=0)
        return "risk_blocked"
    entry = Decimal(candidate.entry)
    stop, t1, t2, bracket = bracket_levels(
        entry=entry,
        params=params,
        stop=candidate.stop,
        t1=candidate.target_one,
        t2=candidate.target_two,
    )
    intent = Intent(
        symbol=candidate.execution_symbol,
        entry_price=entry,
        stop_price=stop,
        setup=candidate.setup,
        signal_symbol=candidate.symbol,
        policy_window=candidate.policy_window,
        target_one=t1,
    )
    quote = ledger.quote(candidate.execution_symbol, entry)
    with ledger.decision_lock():
        decided = ledger.signal_decided(candidate)
        if decided is not None:  # decided meanwhile by another attempt: never decided twice
            return decided
        blocked = _policy_recount(ledger, candidate)
        if blocked is not None:
            ledger.signal_outcome(candidate, "policy_blocked", [blocked], qty=0)
            return "policy_blocked"
        decision = rules.evaluate(intent, ledger.exposure(now=now), config, now, params)
        if not decision.approved:
            ledger.signal_outcome(
                candidate, "risk_blocked", decision.checks_as_dicts(), qty=decision.qty
            )
            return "risk_blocked"
        ledger.signal_outcome(candidate, "approved", decision.checks_as_dicts(), qty=decision.qty)
        plan = trade_plan(
            qty=decision.qty,
            entry=entry,
            stop=decision.stop_price or stop,  # widened to the minimum stop distance
            target_one=t1,
            target_two=t2,
            bracket=bracket,
            params=params,
            config=config,
            now=now,
            quote=quote,
            time_stop_sec=candidate.time_stop_sec,
        )
        trade = ledger.trade_open(candidate, plan, now=now)
    return entry_send(ledger, candidate, trade, now=now, config=config)


def entry_send(ledger, candidate: Candidate, trade, *, now: datetime, config: RiskConfig) -> str:
    """Send the approved trade's `new` entry and record the signal's outcome (submitted /
    dry_run, or failed when the broker refused it). The decision's own send, and the resume
    of an entry whose attempt died before sending it (`trading.services.entry_resume`)."""
    order = ledger.entry_submit(trade, now=now)
    return entry_outcome(ledger, candidate, trade, order, now=now, config=config)


def entry_outcome(
    ledger, candidate: Candidate, trade, order, *, now: datetime, config: RiskConfig
) -> str:
    """The signal's outcome from its sent entry (`order`, None when there was none)."""
    if order is not None and order.status == OrderState.REJECTED:
        trade_close(ledger, trade, now=now, status=TradeState.CANCELLED, reason="entry_rejected")
    if order is None or order.status in (OrderState.REJECTED, OrderState.CANCELLED):
        reason = (order.reject_reason or order.status) if order is not None else "no entry order"
        checks = [_check("trading", "ORDER_REJECTED", False, reason)]
        ledger.signal_outcome(candidate, "failed", checks)
        return "failed"
    outcome = ledger.entry_sent(order, config=config)
    message = f"{order.order_type} {order.qty} {order.symbol} tag {order.tag}"
    ledger.signal_outcome(candidate, outcome, [_check("trading", "ORDER_SENT", True, message)])
    return outcome
