"""The exit manager: what to do with each open trade at a bar close or a beat tick.

`exit_decide` is pure; `trading.core.lifecycle.manage_exits` applies its answers through a
ledger (cancel/replace of the broker-side stop, market exits) for every ledger.

Rules, in order of precedence:
1. session close: flat FLATTEN_BEFORE_CLOSE_MIN minutes before the (early) close;
2. time stop: the trade's deadline (TRADE_TIMEOUT_MIN, or the session policy's time_stop_sec);
3. target two (the bar's high reaches T2): exit the rest;
4. target one (high reaches T1, once): sell PARTIAL_EXIT_PCT and move the stop to break-even;
5. EMA cross-down of the signal symbol (ema_20 crosses below ema_50): exit the rest;
6. trailing stop (TRAIL_PCT, active once the high-water reaches entry × (1 + TRAIL_ACT_PCT)):
   the high-water mark is kept in the ledger; the broker-side stop is raised to
   high-water × (1 − TRAIL_PCT), and a close below that level exits at once.
A broker-side OTOCO bracket owns its stop and target: rules 3-4 are skipped for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from risk.sizing import partial_exit_qty
from trading.core.fills import CENT, BarPrices


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
            qty = partial_exit_qty(state.remaining_qty, partial_exit_pct)
            if qty >= state.remaining_qty:  # PARTIAL_EXIT_PCT=1.0: all of it at T1
                return replace(action, kind="full", qty=state.remaining_qty, reason="target_one")
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
