"""Position sizing and the trade's levels, on the execution symbol (Decimal arithmetic).

A trade is sized so that a stop-out, costs included, loses no more than the risk budget:
qty = the largest whole number with
    qty x (expected fill - expected stop fill) + fees of the round trip <= risk budget,
where the expected fill is the reference price worsened by half the spread and the slippage
(a market entry: the pegged limit becomes one after ENTRY_LIMIT_TIMEOUT_SEC) and the stop
fills like a market sell. Preconditions are checked up front; an impossible size is a quantity
of 0 with a reason, never an exception in the middle of a trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from risk.costs import CostModel

_ZERO = Decimal("0")
_FRICTIONLESS = CostModel()


@dataclass(frozen=True)
class SizeResult:
    qty: int
    reason: str  # how the quantity was reached, or why it is 0
    fill: Decimal | None = None  # the entry price sizing assumed
    risk_at_stop: Decimal = _ZERO  # modelled loss of a stop-out at this qty


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def stopout_loss(*, qty: int, fill: Decimal, stop: Decimal, costs: CostModel) -> Decimal:
    """What a long of `qty` bought at `fill` loses when its stop at `stop` is hit on a bar
    that does not gap: the stop fills as a market sell, then the round trip's fees."""
    if qty <= 0:
        return _ZERO
    exit_price = costs.market_fill("sell", stop)
    return qty * (fill - exit_price) + costs.round_trip_fees(qty, fill, exit_price)


def _risk_qty(fill: Decimal, stop: Decimal, risk_usd: Decimal, costs: CostModel) -> int:
    """The largest qty whose stop-out loss fits `risk_usd` (exact, fees rounded as charged)."""
    exit_price = costs.market_fill("sell", stop)
    per_share = fill - exit_price + costs.fees_per_share(exit_price)
    fixed = 2 * costs.commission_per_order_usd
    if per_share <= 0:
        return 0
    qty = max(_floor((risk_usd - fixed) / per_share), 0)
    # fees round up to the cent per fill: step down until the exact loss fits (a few steps)
    while qty > 0 and stopout_loss(qty=qty, fill=fill, stop=stop, costs=costs) > risk_usd:
        qty -= 1
    return qty


def position_size(
    *,
    entry: Decimal,
    stop: Decimal | None,
    risk_usd: Decimal,
    fixed_qty: int | None = None,
    max_notional: Decimal | None = None,
    buying_power: Decimal | None = None,
    costs: CostModel | None = None,
) -> SizeResult:
    """The risk-based size of a long entered near `entry` with its stop at `stop`, capped so
    that qty x expected fill stays within `max_notional` and the purchase (fees included)
    within `buying_power`.

    A fixed quantity (a per-symbol override) wins over the risk-based size and is returned
    uncapped: the notional and cash rules then judge it, so an operator's number is never
    silently changed. Returns qty 0 when no whole share fits the risk budget.
    """
    costs = costs or _FRICTIONLESS
    if entry is None or entry <= 0:
        return SizeResult(0, "entry price must be positive")
    fill = costs.market_fill("buy", entry)
    if fixed_qty is not None:
        if fixed_qty < 1:
            return SizeResult(0, "fixed quantity must be >= 1", fill)
        loss = _ZERO
        if stop is not None and stop < entry:
            loss = stopout_loss(qty=int(fixed_qty), fill=fill, stop=stop, costs=costs)
        return SizeResult(int(fixed_qty), "fixed quantity (override)", fill, loss)
    if stop is None:
        return SizeResult(0, "no stop price to size from", fill)
    if entry - stop <= 0:
        return SizeResult(0, f"stop {stop} is not below entry {entry}", fill)
    if risk_usd <= 0:
        return SizeResult(0, "risk per trade is 0", fill)
    qty = _risk_qty(fill, stop, risk_usd, costs)
    if costs is _FRICTIONLESS:
        reason = f"floor({risk_usd} / {entry - stop})"
    else:
        reason = f"risk {risk_usd} at stop {stop} from expected fill {fill}, costs included"
    if max_notional is not None and max_notional > 0:
        cap = _floor(max_notional / fill)
        if cap < qty:
            qty, reason = cap, f"capped by notional {max_notional:.2f}"
    elif max_notional is not None:
        qty, reason = 0, "no notional headroom left"
    if buying_power is not None:
        spend = max(buying_power - costs.commission_per_order_usd, _ZERO)
        cap = _floor(spend / (fill + costs.commission_per_share_usd))
        if cap < qty:
            qty, reason = cap, f"capped by buying power {buying_power:.2f}"
    if qty < 1:
        return SizeResult(0, f"no whole share fits: {reason}", fill)
    loss = stopout_loss(qty=qty, fill=fill, stop=stop, costs=costs)
    return SizeResult(qty, reason, fill, loss)


# --- the stop floor ------------------------------------------------------------------------
def min_stop_distance(
    *,
    atr: Decimal | None,
    costs: CostModel,
    k_atr: Decimal,
    n_ticks: int,
    m_spreads: Decimal,
) -> Decimal:
    """The closest a stop may sit to the entry: max(k x ATR, N ticks, m x spread). A stop
    inside the bar-to-bar noise or the cost of getting out is hit by noise, and sizing on it
    buys a position the risk budget cannot carry through a normal fill."""
    floors = [Decimal(n_ticks) * costs.tick_usd, Decimal(m_spreads) * costs.spread_usd]
    if atr is not None and atr > 0:
        floors.append(Decimal(k_atr) * Decimal(atr))
    return max(floors)


def stop_floored(*, entry: Decimal, stop: Decimal, floor: Decimal, tick: Decimal) -> Decimal:
    """A long's stop moved down to at least `floor` below `entry` (on the tick grid)."""
    if floor <= 0 or entry - stop >= floor:
        return stop
    lowest = entry - floor
    return (lowest / tick).to_integral_value(rounding=ROUND_FLOOR) * tick if tick > 0 else lowest


# --- targets -------------------------------------------------------------------------------
def target_clears_costs(
    *, entry: Decimal, target: Decimal, costs: CostModel, multiple: Decimal
) -> tuple[bool, str]:
    """Whether T1 is at least `multiple` round trips above the entry: a first target that
    only pays the spread and fees sells at or below the entry price after costs."""
    round_trip = costs.round_trip_per_share(entry)
    needed = Decimal(multiple) * round_trip
    reward = Decimal(target) - Decimal(entry)
    ok = reward >= needed
    return ok, (
        f"T1 {target} is {reward:.4f} above entry {entry}; needs {multiple} x round trip "
        f"{round_trip:.4f} = {needed:.4f}"
    )


@dataclass(frozen=True)
class Levels:
    stop: Decimal | None
    target_one: Decimal | None
    target_two: Decimal | None


def levels_reanchor(
    *,
    reference: Decimal,
    fill: Decimal,
    stop: Decimal | None,
    target_one: Decimal | None,
    target_two: Decimal | None,
    tick: Decimal = Decimal("0.01"),
) -> Levels:
    """A long's levels moved by (fill - reference): the distances the setup (and sizing)
    planned from the signal's price are kept from the price actually paid, so an entry that
    fills above its T1 or below its stop cannot happen. The stop is rounded up to the tick
    (never a larger loss than planned), the targets to the nearest tick. The core calls this
    once, on the entry's first fill."""
    shift = Decimal(fill) - Decimal(reference)

    def moved(level, rounding):
        if level is None:
            return None
        value = Decimal(level) + shift
        return (value / tick).to_integral_value(rounding=rounding) * tick

    return Levels(
        stop=moved(stop, ROUND_CEILING),
        target_one=moved(target_one, ROUND_HALF_UP),
        target_two=moved(target_two, ROUND_HALF_UP),
    )


# --- exits ---------------------------------------------------------------------------------
def partial_exit_qty(remaining: int, pct: Decimal) -> int:
    """Shares to sell at T1: floor(remaining x pct), keeping at least one share for T2 when
    pct < 1. pct >= 1 means all of it (PARTIAL_EXIT_PCT=1.0 closes the trade at T1); 0 means
    none (T1 only moves the stop to break-even)."""
    if remaining <= 0:
        return 0
    pct = Decimal(str(pct))
    if pct >= 1:
        return remaining
    qty = _floor(Decimal(remaining) * pct)
    return min(qty, remaining - 1) if remaining > 1 else 0
