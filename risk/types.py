"""Value types between the strategy, risk and trading stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal


@dataclass(frozen=True)
class Intent:
    """What a signal (or an operator) wants to do: buy `symbol` (the execution symbol) near
    `entry_price`, protected at `stop_price`. `qty=None` means: size it from the stop."""

    symbol: str
    entry_price: Decimal
    stop_price: Decimal | None = None
    qty: int | None = None
    side: str = "buy"
    setup: str = ""
    signal_symbol: str = ""
    policy_window: tuple[time, time] | None = None  # the active session policy's window
    target_one: Decimal | None = None  # T1 must clear the round-trip cost (TARGET_BELOW_COSTS)
    atr: Decimal | None = None  # the execution symbol's ATR, for the minimum stop distance


@dataclass(frozen=True)
class Exposure:
    """What the account holds at decision time, gathered by the caller (trading) so the rules
    stay pure. Counts are of the ledger; money is Decimal."""

    open_trades: int = 0
    open_orders: int = 0
    trades_by_symbol: dict[str, int] = field(default_factory=dict)
    notional_by_symbol: dict[str, Decimal] = field(default_factory=dict)
    cash: Decimal | None = None
    buying_power: Decimal | None = None
    day_pnl: Decimal = Decimal("0")
    trading_state: str = "ACTIVE"
    # Entries in flight (CONTRACTS.md item 1): the worst-case notional of the unfilled part
    # of working entry orders per execution symbol, and their sum (cash they reserve).
    pending_notional_by_symbol: dict[str, Decimal] = field(default_factory=dict)
    pending_cash: Decimal = Decimal("0")
    # (setup, execution_symbol, decided_at) of live trades and of trades decided within the
    # idea window (risk.exposure.ideas_in_window builds it); DUPLICATE_EXPOSURE reads it.
    ideas: tuple[tuple[str, str, datetime], ...] = ()
    # Account equity (cash + positions at market); None = derive it from cash + positions.
    equity: Decimal | None = None
    # What live trades lose if every one is stopped out now (risk.exposure.open_risk), so the
    # daily loss limit holds for positions + pending entries, not only for realised P&L.
    open_risk: Decimal = Decimal("0")

    def symbol_notional(self, symbol: str) -> Decimal:
        """Held plus pending notional in `symbol`."""
        zero = Decimal("0")
        return self.notional_by_symbol.get(symbol, zero) + self.pending_notional_by_symbol.get(
            symbol, zero
        )

    @property
    def gross_notional(self) -> Decimal:
        """Positions at cost plus entries in flight, every symbol."""
        return sum(self.notional_by_symbol.values(), Decimal("0")) + self.pending_cash

    @property
    def spendable(self) -> Decimal | None:
        """Cash the next entry may use: the smaller of cash and buying power (a cash account
        never borrows), net of what entries in flight reserve. None when neither is known."""
        known = [v for v in (self.cash, self.buying_power) if v is not None]
        if not known:
            return None
        return min(known) - self.pending_cash

    @property
    def equity_estimate(self) -> Decimal | None:
        if self.equity is not None:
            return self.equity
        if self.cash is None:
            return None
        return self.cash + sum(self.notional_by_symbol.values(), Decimal("0"))


@dataclass(frozen=True)
class Check:
    code: str
    passed: bool
    message: str
    stage: str = "risk"

    def as_dict(self) -> dict:
        return {
            "stage": self.stage,
            "code": self.code,
            "passed": self.passed,
            "message": self.message,
        }


@dataclass(frozen=True)
class Decision:
    approved: bool
    qty: int
    checks: tuple[Check, ...]
    notional: Decimal = Decimal("0")
    # The stop the trade must use: the intent's, or widened to the minimum stop distance.
    stop_price: Decimal | None = None
    expected_fill: Decimal | None = None  # what sizing assumed the entry fills at
    risk_at_stop: Decimal = Decimal("0")  # modelled loss of a stop-out, costs included

    @property
    def reasons(self) -> list[str]:
        return [c.code for c in self.checks if not c.passed]

    def checks_as_dicts(self) -> list[dict]:
        return [c.as_dict() for c in self.checks]
