"""What the lifecycle needs from a ledger: a small protocol with two implementations, the ORM
ledger of the live and paper path (`trading.orm_ledger.OrmLedger`) and the in-memory ledger of
the backtests (`analytics.backtest.memory_ledger.MemoryLedger`).

Orders and trades are the ledger's own objects; they expose the attribute names of
`trading.models.Order` / `Trade` (`pk, role, side, qty, filled_qty, order_type, order_class,
price, stop_price, status, created_at, parent_id, trade_id, is_working`; `pk, status, symbol,
execution_symbol, setup, qty, remaining_qty, entry_price, stop_price, target_one, target_two,
partial_done, trail_pct, trail_act_pct, trail_high, trail_active, deadline, exit_reason,
realized_pnl, opened_at, closed_at, created_at`).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from risk.types import Exposure
from trading.core.types import Candidate, OrderSpec, TradePlan


class Ledger(Protocol):
    is_paper: bool  # fills come from bars (paper broker, backtests), not from a broker
    resting_targets: bool  # RESTING_TARGETS: targets rest at the broker as OCO pairs
    partial_exit_pct: Decimal  # PARTIAL_EXIT_PCT: the T1 pair's share of what is held

    # --- reads ----------------------------------------------------------------------------
    def live_trades(self, symbol: str | None = None) -> list: ...  # pending + open, in order
    def decided_between(self, start: datetime, end: datetime) -> list: ...  # start<=created<=end
    def working(self, trade, roles: Iterable[str] | None = None) -> list: ...
    def working_for_symbol(self, symbol: str, ts: datetime) -> list: ...  # bar-fill eligible
    def entry_limits_before(self, before: datetime) -> list: ...  # pegged entries to escalate
    def has_orders(self, symbol: str) -> bool: ...  # cheap pre-checks of a bar step
    def has_live(self, symbol: str) -> bool: ...
    def may_have_open(self, symbol: str) -> bool: ...
    def anything_alive(self) -> bool: ...  # a live trade or a working order: the clock acts
    def working_stale(self, before: datetime) -> list: ...  # paper orders placed <= before
    def last_bar(self, symbol: str, before: datetime): ...  # (start, close) of the last bar
    def refresh(self, obj): ...
    def trade_of(self, order, *, lock: bool = False): ...
    def exposure(self, *, now: datetime) -> Exposure: ...  # inside decision_lock
    def open_order_count(self) -> int: ...  # working non-protective orders
    def position_notional(self) -> dict[str, Decimal]: ...
    def pending_entries(self) -> list: ...  # risk.exposure.WorkingEntry rows
    def cost_model(self, symbol: str): ...  # the symbol's risk.costs.CostModel
    def balances(self) -> tuple[Decimal, Decimal | None] | None: ...  # (cash, buying power)
    def realized_between(self, start: datetime, end: datetime) -> Decimal: ...
    def last_price(self, symbol: str) -> Decimal | None: ...
    def trading_state(self) -> str: ...
    def halt_in_force(self) -> bool: ...  # this book's kill switch has nothing left to do
    def traded_in_window(self, start: datetime, end: datetime) -> int: ...
    def quote(self, symbol: str, ref: Decimal): ...

    # --- writes ---------------------------------------------------------------------------
    def decision_lock(self) -> AbstractContextManager: ...
    def trade_lock(self, trade) -> AbstractContextManager: ...  # one exit manager per trade
    def atomic(self) -> AbstractContextManager: ...
    def place(self, trade, spec: OrderSpec, *, now: datetime): ...
    def place_pair(self, trade, stop: OrderSpec, target: OrderSpec, *,
                   now: datetime): ...  # fmt: skip  # one OCO: the stop row, its limit child
    def cancel(self, order, *, now: datetime, cause: str) -> bool: ...  # a pair leg: the pair
    def modify(self, order, *, now: datetime, stop=None, order_type=None) -> bool: ...
    def fill_record(self, order, *, qty: int, price: Decimal, ts: datetime, fill_id: str,
                    fee: Decimal | None): ...  # fmt: skip  # None: the cost model's fee
    def bracket_activate(self, order, trade, *, now: datetime) -> None: ...
    def bracket_trim(self, trade) -> None: ...  # legs sell what is held
    def trade_set(self, trade, *, status: str | None = None, **fields) -> bool: ...
    def trade_open(self, candidate: Candidate, plan: TradePlan, *, now: datetime): ...
    def entry_submit(self, trade, *, now: datetime): ...
    def entry_sent(self, order, *, config) -> str: ...  # outcome: dry_run / submitted
    def entry_replacement(self, order, *, now: datetime): ...  # a market row, not sent yet
    def submit(self, order, *, now: datetime, qty: int | None = None): ...
    def signal_outcome(self, candidate: Candidate, outcome: str, checks=None, qty=None): ...
    def signal_decided(self, candidate: Candidate) -> str | None: ...  # outcome, None if open
    def mark(self, symbol: str, price: Decimal) -> None: ...
    def halt(self, reason: str, *, now: datetime, resume_at: datetime | None = None,
             resume_state: str = "") -> None: ...  # fmt: skip
    def halt_resume(self) -> tuple[datetime | None, str] | None: ...  # a halt's lift plan
    def resume(self, *, due: datetime, reason: str) -> bool: ...  # lift a halt due by then
    def flatten(self, *, reason: str, now: datetime) -> None: ...
