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
    # CONTRACTS.md item 1: entries in flight (worst-case notional of their unfilled part)
    pending_notional_by_symbol: dict[str, Decimal] = field(default_factory=dict)
    pending_cash: Decimal = Decimal("0")
    ideas: tuple[tuple[str, str, datetime], ...] = ()  # (setup, execution symbol, decided at)


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

    @property
    def reasons(self) -> list[str]:
        return [c.code for c in self.checks if not c.passed]

    def checks_as_dicts(self) -> list[dict]:
        return [c.as_dict() for c in self.checks]
