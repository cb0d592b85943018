"""Position sizing on the execution symbol's stop distance (Decimal arithmetic).

Preconditions are checked up front; an impossible size is a quantity of 0 with a reason, never
an exception in the middle of a trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal


@dataclass(frozen=True)
class SizeResult:
    qty: int
    reason: str  # how the quantity was reached, or why it is 0


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def position_size(
    *,
    entry: Decimal,
    stop: Decimal | None,
    risk_usd: Decimal,
    fixed_qty: int | None = None,
    max_notional: Decimal | None = None,
    buying_power: Decimal | None = None,
) -> SizeResult:
    """floor(risk_usd / (entry - stop)), capped by the notional cap and the buying power.

    A fixed quantity (a per-symbol override) wins over the risk-based size and is returned
    uncapped: the notional and cash rules then judge it, so an operator's number is never
    silently changed. Returns qty 0 when no whole share fits the risk budget.
    """
    if entry is None or entry <= 0:
        return SizeResult(0, "entry price must be positive")
    if fixed_qty is not None:
        if fixed_qty < 1:
            return SizeResult(0, "fixed quantity must be >= 1")
        return SizeResult(int(fixed_qty), "fixed quantity (override)")
    if stop is None:
        return SizeResult(0, "no stop price to size from")
    distance = entry - stop
    if distance <= 0:
        return SizeResult(0, f"stop {stop} is not below entry {entry}")
    if risk_usd <= 0:
        return SizeResult(0, "risk per trade is 0")
    qty = _floor(risk_usd / distance)
    reason = f"floor({risk_usd} / {distance})"
    if max_notional is not None and max_notional > 0:
        cap = _floor(max_notional / entry)
        if cap < qty:
            qty, reason = cap, f"capped by notional {max_notional}"
    if buying_power is not None:
        cap = _floor(max(buying_power, Decimal("0")) / entry)
        if cap < qty:
            qty, reason = cap, f"capped by buying power {buying_power}"
    if qty < 1:
        return SizeResult(0, f"no whole share fits: {reason}")
    return SizeResult(qty, reason)
