"""The exit manager: what to do with each open trade at a bar close or a beat tick.

`exit_decide` is pure (the backtester calls it without a database); `exits_manage` applies its
answers through `trading.services` (cancel/replace of the broker-side stop, market exits).

Rules, in order of precedence:
1. session close: flat FLATTEN_BEFORE_CLOSE_MIN minutes before the (early) close;
2. time stop: the trade's deadline (TRADE_TIMEOUT_MIN, or the session policy's time_stop_sec);
3. target two (the bar's high reaches T2): exit the rest;
4. target one (high reaches T1, once): sell PARTIAL_EXIT_PCT and move the stop to break-even;
5. EMA cross-down of the signal symbol (ema_20 crosses below ema_50): exit the rest;
6. trailing stop (TRAIL_PCT, active once the high-water reaches entry × (1 + TRAIL_ACT_PCT)):
   the high-water mark is kept in the database; the broker-side stop is raised to
   high-water × (1 − TRAIL_PCT), and a close below that level exits at once.
A broker-side OTOCO bracket owns its stop and target: rules 3-4 are skipped for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from trading.fill_model import CENT, BarPrices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExitState:
    remaining_qty: int
    entry_price: Decimal
    stop_price: Decimal
    target_one: Decimal | None = None
    target_two: Decimal | None = None
    partial_done: bool = False
    trail_pct: Decimal | None = None
    trail_act_pct: Decimal | None = None
    trail_high: Decimal | None = None
    trail_active: bool = False
    deadline: datetime | None = None
    bracket: bool = False


@dataclass(frozen=True)
class ExitAction:
    kind: str  # none, partial, full, stop (move the stop only)
    qty: int = 0
    reason: str = ""
    new_stop: Decimal | None = None
    trail_high: Decimal | None = None
    trail_active: bool = False
    partial_done: bool = False


def exit_decide(
    state: ExitState,
    *,
    now: datetime,
    bar: BarPrices | None,
    flat_at: datetime | None,
    partial_exit_pct: Decimal,
    ema_cross_down: bool = False,
) -> ExitAction:
    """The one action for this trade now. `bar` is the bar that just closed (None on a beat
    tick: only the clock rules apply)."""
    high_water = state.trail_high
    if bar is not None:  # the high-water mark follows every bar, whatever the action
        high_water = max(state.trail_high or bar.high, bar.high)
    none = ExitAction(
        "none",
        trail_high=high_water,
        trail_active=state.trail_active,
        partial_done=state.partial_done,
    )
    if state.remaining_qty <= 0:
        return none
    if flat_at is not None and now >= flat_at:
        return replace(none, kind="full", qty=state.remaining_qty, reason="session_close")
    if state.deadline is not None and now >= state.deadline:
        return replace(none, kind="full", qty=state.remaining_qty, reason="timeout")
    if bar is None:
        return none
    action = none
    if not state.bracket:
        if state.target_two is not None and bar.high >= state.target_two:
            return replace(action, kind="full", qty=state.remaining_qty, reason="target_two")
        if state.target_one is not None and not state.partial_done and bar.high >= state.target_one:
            qty = int(
                (Decimal(state.remaining_qty) * partial_exit_pct).to_integral_value(ROUND_FLOOR)
            )
            qty = min(qty, state.remaining_qty - 1) if state.remaining_qty > 1 else 0
            breakeven = max(state.stop_price, state.entry_price)
            kind = "partial" if qty >= 1 else "stop"
            return replace(
                action,
                kind=kind,
                qty=qty,
                reason="target_one",
                new_stop=breakeven,
                partial_done=True,
            )
    if ema_cross_down:
        return replace(action, kind="full", qty=state.remaining_qty, reason="ema_cross_down")
    if state.trail_pct:
        active = state.trail_active or (
            state.trail_act_pct is None
            or high_water >= state.entry_price * (1 + state.trail_act_pct)
        )
        action = replace(action, trail_active=active)
        if active:
            level = (high_water * (1 - state.trail_pct)).quantize(CENT, rounding=ROUND_HALF_UP)
            if bar.close <= level:
                return replace(action, kind="full", qty=state.remaining_qty, reason="trailing")
            if level > state.stop_price:
                return replace(action, kind="stop", reason="trailing", new_stop=level)
    return action


def flat_time(now: datetime, minutes_before_close: int) -> datetime | None:
    """When positions must be flat today: the session's close minus the margin (early closes
    included); None on a day without a session."""
    from risk.calendar import session_at

    session = session_at(now)
    if session is None:
        return None
    return session.close - timedelta(minutes=minutes_before_close)


def ema_crossed_down(symbol: str, at: datetime) -> bool:
    """ema_20 crossed below ema_50 on the signal symbol's latest two evaluated bars up to
    `at` (from the strategy engine's FeatureSnapshot rows)."""
    from strategies.models import FeatureSnapshot

    rows = list(
        FeatureSnapshot.objects.filter(symbol=symbol, bar_ts__lte=at)
        .order_by("-bar_ts")
        .values_list("features", flat=True)[:2]
    )
    if len(rows) < 2:
        return False
    try:
        now_fast, now_slow = float(rows[0]["ema_20"]), float(rows[0]["ema_50"])
        prev_fast, prev_slow = float(rows[1]["ema_20"]), float(rows[1]["ema_50"])
    except (KeyError, TypeError, ValueError):
        return False
    return prev_fast >= prev_slow and now_fast < now_slow


def exits_manage(
    *,
    now: datetime,
    symbol: str | None = None,
    bar=None,
    config=None,
    broker=None,
) -> list[tuple[int, str]]:
    """Apply the exit rules to every open trade (of `symbol`'s execution symbol) and make
    sure each keeps its protective stop. Returns [(trade id, action)] for every open trade
    looked at ("checked") and each action taken."""
    from django.conf import settings

    from risk.config import RiskConfig
    from trading import services
    from trading.models import OrderRole, TradeStatus
    from trading.selectors import PROTECTIVE_ROLES, open_trades, trade_orders

    config = config or RiskConfig.from_settings()
    prices = BarPrices.of(bar) if bar is not None else None
    flat_at = flat_time(now, settings.FLATTEN_BEFORE_CLOSE_MIN)
    done: list[tuple[int, str]] = []
    for trade in list(open_trades(symbol=symbol).filter(status=TradeStatus.OPEN)):
        done.append((trade.pk, "checked"))
        legs = list(trade_orders(trade, roles=PROTECTIVE_ROLES))
        bracket = any(o.parent_id for o in legs)
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
            bracket=bracket,
        )
        cross = bar is not None and ema_crossed_down(trade.symbol, bar.ts)
        action = exit_decide(
            state,
            now=now,
            bar=prices,
            flat_at=flat_at,
            partial_exit_pct=config.partial_exit_pct,
            ema_cross_down=cross,
        )
        if (action.trail_high, action.trail_active, action.partial_done) != (
            trade.trail_high,
            trade.trail_active,
            trade.partial_done,
        ):
            trade.trail_high = action.trail_high
            trade.trail_active = action.trail_active
            trade.partial_done = action.partial_done
            trade.save(update_fields=["trail_high", "trail_active", "partial_done"])
        if action.kind == "full":
            if services.trade_exit(
                trade=trade, qty=None, reason=action.reason, now=now, broker=broker
            ):
                done.append((trade.pk, action.reason))
        elif action.kind == "partial":
            if services.trade_exit(
                trade=trade,
                qty=action.qty,
                reason=action.reason,
                now=now,
                new_stop=action.new_stop,
                broker=broker,
            ):
                done.append((trade.pk, action.reason))
        elif action.kind == "stop":
            trade.stop_price = action.new_stop
            trade.save(update_fields=["stop_price"])
            services.trade_protect(trade=trade, now=now, broker=broker)
            done.append((trade.pk, f"stop->{action.new_stop}"))
        else:
            stops = trade_orders(trade, roles=[OrderRole.STOP]).exists()
            exiting = trade_orders(trade, roles=services.EXIT_ROLES).exists()
            if not stops and not exiting:
                log.warning("trade %s had no working stop: re-protecting", trade.pk)
                services.trade_protect(trade=trade, now=now, broker=broker)
                done.append((trade.pk, "protected"))
    return done
