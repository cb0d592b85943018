"""The values the lifecycle passes around: order roles and states (the same strings as
`trading.models`), what to place, a signal to decide and the plan of a trade."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
FOUR = Decimal("0.0001")  # averages and ledger prices keep four places
ZERO = Decimal("0")


def to_cent(value) -> Decimal | None:
    """A price or amount rounded half-up to the cent (None stays None)."""
    if value is None:
        return None
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


class Role:
    ENTRY = "entry"
    STOP = "stop"
    TARGET_ONE = "target_one"
    TARGET_TWO = "target_two"
    EXIT = "exit"
    FLATTEN = "flatten"


PROTECTIVE_ROLES = (Role.STOP, Role.TARGET_ONE, Role.TARGET_TWO)
EXIT_ROLES = (Role.EXIT, Role.FLATTEN)


class OrderState:
    NEW = "new"
    SUBMITTED = "submitted"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


WORKING = frozenset(
    {OrderState.NEW, OrderState.SUBMITTED, OrderState.OPEN, OrderState.PARTIALLY_FILLED}
)
DEAD = frozenset({OrderState.CANCELLED, OrderState.REJECTED, OrderState.EXPIRED})


class TradeState:
    PENDING = "pending"
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


LIVE_TRADE_STATES = (TradeState.PENDING, TradeState.OPEN)
BUY_SIDES = ("buy", "buy_to_cover")


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """An order the lifecycle wants placed for a trade (the ledger names and sends it)."""

    role: str
    side: str
    qty: int
    order_type: str
    price: Decimal | None = None
    stop: Decimal | None = None
    tag_suffix: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Candidate:
    """A fired setup on its way to risk: levels on the execution symbol, the session policy's
    window and time stop, and `ref` (the ledger's own signal object: a Signal row, a fired
    backtest signal)."""

    setup: str
    symbol: str
    execution_symbol: str
    bar_ts: datetime
    entry: Decimal | None
    stop: Decimal | None
    target_one: Decimal | None
    target_two: Decimal | None
    time_stop_sec: float | None = None
    policy_window: tuple | None = None  # (start, end) times of the active session policy
    policy_limit: tuple | None = None  # (bar_ts start, bar_ts end, max_trades) to re-count
    ref: object = field(default=None, compare=False)


@dataclass(frozen=True)
class TradePlan:
    """Everything a trade is opened with, decided before any row or object exists."""

    qty: int
    stop: Decimal
    target_one: Decimal | None
    target_two: Decimal | None
    deadline: datetime
    trail_pct: Decimal | None
    trail_act_pct: Decimal | None
    entry_type: str
    entry_limit: Decimal | None
    entry_why: str
    bracket: bool  # a broker-side OTOCO: entry, target-two limit and stop travel together
