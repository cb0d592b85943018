"""The ledger of the backtests, in memory: orders, trades, positions and cash of one run.

It is the in-memory `trading.core.ledger.Ledger`: the lifecycle core (`trading.core`) runs the
same rules on it as on the database of the live and paper path, so nothing here decides how
a trade moves. What it adds: the objects themselves, cash, and the trade and signal records a
`BacktestResult` is made of.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analytics.backtest.result import ExitLeg, SignalRecord, StateChange, TradeRecord
from risk.config import RiskConfig, SymbolParams
from trading.brokers.paper import paper_quote
from trading.core import lifecycle
from trading.core.fills import FillCosts
from trading.core.states import trade_can_transition
from trading.core.types import (
    BUY_SIDES,
    FOUR,
    PROTECTIVE_ROLES,
    WORKING,
    ZERO,
    Candidate,
    OrderSpec,
    OrderState,
    Role,
    TradePlan,
    TradeState,
    to_cent,
)

log = logging.getLogger(__name__)
NY = ZoneInfo("America/New_York")
TEN_K = Decimal(10000)
_NO_LOCK = contextlib.nullcontext()


@dataclass(eq=False)
class SimOrder:
    pk: int
    trade: SimTrade
    role: str
    side: str
    qty: int
    order_type: str
    created_at: datetime
    symbol: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reason: str = ""
    order_class: str = "equity"
    parent_id: int | None = None
    status: str = OrderState.OPEN
    filled_qty: int = 0
    reject_reason: str = ""
    children: list = field(default_factory=list)

    @property
    def trade_id(self) -> int:
        return self.trade.pk

    @property
    def is_working(self) -> bool:
        return self.status in WORKING

    @property
    def broker_order_id(self) -> int:
        return self.pk

    @property
    def tag(self) -> str:
        return f"bt-{self.pk}"


@dataclass(eq=False)
class SimTrade:
    pk: int
    candidate: Candidate
    qty: int
    stop_price: Decimal
    target_one: Decimal | None
    target_two: Decimal | None
    deadline: datetime
    created_at: datetime
    record: TradeRecord
    trail_pct: Decimal | None = None
    trail_act_pct: Decimal | None = None
    status: str = TradeState.PENDING
    remaining_qty: int = 0
    entry_price: Decimal | None = None
    partial_done: bool = False
    trail_high: Decimal | None = None
    trail_active: bool = False
    exit_reason: str = ""
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    orders: list = field(default_factory=list)

    @property
    def setup(self) -> str:
        return self.candidate.setup

    @property
    def symbol(self) -> str:
        return self.candidate.symbol

    @property
    def execution_symbol(self) -> str:
        return self.candidate.execution_symbol


@dataclass(frozen=True, slots=True)
class SimFill:
    order: SimOrder
    qty: int
    price: Decimal
    fee: Decimal = ZERO


@dataclass
class _Position:
    qty: int = 0
    avg_price: Decimal = ZERO


class MemoryLedger:
    """Orders, trades, positions and cash of one backtest, advanced bar by bar by
    `trading.core.step.bar_step`."""

    is_paper = True

    def __init__(
        self,
        *,
        risk: RiskConfig,
        costs: FillCosts,
        starting_cash: Decimal,
        params: dict[str, SymbolParams],
        policy_book=None,
        etf_symbols: frozenset[str] = frozenset(),
        bars_index: dict | None = None,
    ) -> None:
        self.risk = risk
        self.resting_targets = risk.resting_targets
        self.partial_exit_pct = risk.partial_exit_pct
        self.policy_book = policy_book
        self.etf_symbols = etf_symbols
        self.costs = costs
        self.cash = Decimal(starting_cash)
        self.params = params
        self._ids = itertools.count(1)
        self.trades: list[SimTrade] = []  # every trade ever opened, in creation order
        self.live: list[SimTrade] = []  # pending or open
        self.orders_by_symbol: dict[str, list[SimOrder]] = {}
        self.positions: dict[str, _Position] = {}
        self.signals: list[SignalRecord] = []
        self._signal_of: dict[int, SignalRecord] = {}
        # symbol -> (bar starts in ns, closes): the data's last bar before an instant
        self.bars_index = bars_index or {}
        self.state = "ACTIVE"  # HALTED by the daily loss limit until its resume time
        self.resume_at: datetime | None = None
        self.resume_state = ""
        self.state_changes: list[StateChange] = []  # every halt and lift, in order
        self.prices: dict[str, Decimal] = {}  # last fill or mark per symbol
        self.realized_by_day: dict = {}  # New York date -> realized P&L of trades closed then

    # --- reads ----------------------------------------------------------------------------
    def live_trades(self, symbol: str | None = None) -> list:
        if symbol is None:
            return list(self.live)
        return [t for t in self.live if t.candidate.execution_symbol == symbol]

    def decided_between(self, start: datetime, end: datetime) -> list:
        # self.trades is in creation order and a backtest's clock only moves forward, so the
        # scan stops at the first trade older than the window (not every trade ever opened)
        out = []
        for t in reversed(self.trades):
            if t.created_at < start:
                break
            if t.created_at <= end:
                out.append(t)
        return out

    def working(self, trade, roles=None) -> list:
        return [
            o for o in trade.orders if o.status in WORKING and (roles is None or o.role in roles)
        ]

    def working_for_symbol(self, symbol: str, ts: datetime) -> list:
        orders = [o for o in self.orders_by_symbol.get(symbol, ()) if o.status in WORKING]
        self.orders_by_symbol[symbol] = orders
        return [o for o in orders if o.status != OrderState.NEW and o.created_at <= ts]

    def entry_limits_before(self, before: datetime) -> list:
        return []  # backtests escalate per bar (fills_on_bar), never on a clock tick

    def has_orders(self, symbol: str) -> bool:
        return bool(self.orders_by_symbol.get(symbol))

    def anything_alive(self) -> bool:
        return bool(self.live) or any(self.orders_by_symbol.values())

    def working_stale(self, before: datetime) -> list:
        return [
            o
            for orders in self.orders_by_symbol.values()
            for o in orders
            if o.status in WORKING and o.status != OrderState.NEW and o.created_at <= before
        ]

    def last_bar(self, symbol: str, before: datetime):
        """(start, close) of the data's last bar of `symbol` starting before `before`."""
        index = self.bars_index.get(symbol)
        if index is None:
            return None
        starts, closes = index
        j = int(np.searchsorted(starts, pd.Timestamp(before).value, side="left")) - 1
        if j < 0:
            return None
        return pd.Timestamp(int(starts[j]), tz="UTC").to_pydatetime(), Decimal(str(closes[j]))

    def has_live(self, symbol: str) -> bool:
        return any(t.candidate.execution_symbol == symbol for t in self.live)

    def may_have_open(self, symbol: str) -> bool:
        return any(
            t.status == TradeState.OPEN and t.candidate.execution_symbol == symbol
            for t in self.live
        )

    def refresh(self, obj):
        return obj

    def trade_of(self, order, *, lock: bool = False):
        return order.trade

    def exposure(self, *, now: datetime):
        return lifecycle.exposure(
            self,
            now=now,
            cash=self.cash,
            buying_power=self.cash,
            with_day_pnl=self.risk.max_daily_loss_usd > 0,
            idea_window_sec=self.risk.idea_window_sec,
        )

    def open_order_count(self) -> int:
        return sum(
            1
            for t in self.live
            for o in t.orders
            if o.status in WORKING and o.role not in PROTECTIVE_ROLES
        )

    def position_notional(self) -> dict:
        return {s: abs(p.qty) * p.avg_price for s, p in self.positions.items() if p.qty != 0}

    def pending_entries(self) -> list:
        from risk.exposure import WorkingEntry

        out = []
        for trade in self.live:
            for order in trade.orders:
                if order.role == Role.ENTRY and order.status in WORKING:
                    planned = trade.candidate.entry if trade.candidate.entry is not None else None
                    if planned is None:
                        planned = order.price if order.price is not None else 0
                    out.append(
                        WorkingEntry(
                            symbol=order.symbol,
                            qty=order.qty - order.filled_qty,
                            limit_price=order.price,
                            reference_price=Decimal(planned),
                        )
                    )
        return out

    def cost_model(self, symbol: str):
        return self._model(symbol)

    def balances(self):
        return self.cash, self.cash

    def realized_between(self, start: datetime, end: datetime) -> Decimal:
        return Decimal(self.realized_by_day.get(start.astimezone(NY).date(), 0))

    def last_price(self, symbol: str):
        return self.prices.get(symbol)

    def trading_state(self) -> str:
        return self.state

    def halt_resume(self):
        if self.state != "HALTED":
            return None
        return self.resume_at, self.resume_state

    def halt_in_force(self) -> bool:
        return self.state == "HALTED"

    def traded_in_window(self, start: datetime, end: datetime) -> int:
        return sum(
            1
            for s in self.signals
            if s.outcome in lifecycle.TRADED_OUTCOMES and start <= s.bar_ts < end
        )

    def quote(self, symbol: str, ref: Decimal):
        return paper_quote(symbol, ref, self._model(symbol))

    def _model(self, symbol: str):
        from trading.core.step import symbol_model

        params = self.params.get(symbol)
        own = symbol_model(self.risk, params) if params is not None else None
        return own or self.costs.model

    # --- writes ---------------------------------------------------------------------------
    def decision_lock(self):
        return _NO_LOCK

    def trade_lock(self, trade):
        return _NO_LOCK

    def atomic(self):
        return _NO_LOCK

    def _order(self, trade: SimTrade, **kwargs) -> SimOrder:
        order = SimOrder(
            pk=next(self._ids), trade=trade, symbol=trade.candidate.execution_symbol, **kwargs
        )
        trade.orders.append(order)
        self.orders_by_symbol.setdefault(order.symbol, []).append(order)
        return order

    def place(self, trade, spec: OrderSpec, *, now: datetime):
        return self._order(
            trade,
            role=spec.role,
            side=spec.side,
            qty=spec.qty,
            order_type=spec.order_type,
            price=spec.price,
            stop_price=spec.stop,
            reason=spec.reason,
            created_at=now,
        )

    def place_pair(self, trade, stop: OrderSpec, target: OrderSpec, *, now: datetime):
        """One OCO pair: the stop leg (the head) and its limit leg (a child of it)."""
        head = self.place(trade, stop, now=now)
        head.order_class = "oco"
        child = self.place(trade, target, now=now)
        child.order_class, child.parent_id = "oco", head.pk
        head.children.append(child)
        return head

    def cancel(self, order, *, now: datetime, cause: str) -> bool:
        if order.status not in WORKING:
            return False
        if order.order_class == "oco" and order.parent_id is not None:
            # a pair is cancelled as one order (as at the broker): through its head
            head = next(o for o in order.trade.orders if o.pk == order.parent_id)
            if head.status in WORKING:
                return self.cancel(head, now=now, cause=cause)
        order.status = OrderState.CANCELLED
        if order.parent_id is None:
            for child in order.children:
                if child.status in WORKING:
                    child.status = OrderState.CANCELLED
        return True

    def modify(self, order, *, now: datetime, stop=None, order_type=None) -> bool:
        if stop is not None:
            order.stop_price = to_cent(stop)
        else:
            order.order_type, order.price = order_type, None
        return True

    def fill_record(self, order, *, qty, price, ts, fill_id, fee):
        qty = min(int(qty), order.qty - order.filled_qty)
        if qty <= 0 or order.status not in WORKING:
            return None
        price = to_cent(price)
        if fee is None:  # a broker's fill: the symbol's cost model prices it
            fee = self._model(order.symbol).fill_fee(
                order.side, qty, price, first_fill=order.filled_qty == 0
            )
        order.filled_qty += qty
        order.status = (
            OrderState.FILLED if order.filled_qty >= order.qty else OrderState.PARTIALLY_FILLED
        )
        self._position_apply(order.symbol, order.side, qty, price, Decimal(fee))
        trade = order.trade
        if fee:
            trade.fees += Decimal(fee)
            trade.record.fees = float(trade.fees)
        if order.side not in BUY_SIDES:
            reason = order.reason or order.role
            trade.record.legs.append(ExitLeg(ts=ts, qty=qty, price=float(price), reason=reason))
        return SimFill(order, qty, price, Decimal(fee))

    def _position_apply(self, symbol: str, side: str, qty: int, price: Decimal, fee) -> None:
        position = self.positions.setdefault(symbol, _Position())
        buying = side in BUY_SIDES
        signed = qty if buying else -qty
        self.cash += (-price * qty if buying else price * qty) - fee
        old = position.qty
        new = old + signed
        if old == 0 or (old > 0) == (signed > 0):
            total = abs(old) + abs(signed)
            position.avg_price = (position.avg_price * abs(old) + price * abs(signed)) / total
        elif abs(signed) > abs(old):
            position.avg_price = price
        elif new == 0:
            position.avg_price = ZERO
        position.qty = new
        position.avg_price = Decimal(position.avg_price).quantize(FOUR)
        self.prices[symbol] = price

    def bracket_activate(self, order, trade, *, now: datetime) -> None:
        """The bracket's target and stop become working once the entry fills (as the paper
        broker does), trimmed to what is held."""
        for child in order.children:
            if child.status == OrderState.NEW:
                child.status = OrderState.OPEN
        self.bracket_trim(trade)

    def bracket_trim(self, trade) -> None:
        """Bracket legs sell exactly what is held (as the paper broker's)."""
        for leg in trade.orders:
            if leg.parent_id is not None and leg.status in WORKING:
                leg.qty = leg.filled_qty + trade.remaining_qty

    def trade_set(self, trade, *, status: str | None = None, **fields) -> bool:
        moved = status is not None and status != trade.status
        if moved and not trade_can_transition(trade.status, status):
            log.warning("trade %s: illegal transition %s -> %s refused",
                        getattr(trade, "pk", "?"), trade.status, status)  # fmt: skip
            return False
        for name, value in fields.items():
            setattr(trade, name, value)
        if "entry_price" in fields:
            trade.record.entry_price = float(trade.entry_price)
        if not moved:
            return True
        trade.status = status
        if status == TradeState.OPEN:
            trade.record.entry_ts = trade.opened_at
        elif status in (TradeState.CLOSED, TradeState.CANCELLED):
            if trade in self.live:
                self.live.remove(trade)
            if status == TradeState.CLOSED:
                day = trade.closed_at.astimezone(NY).date()
                self.realized_by_day[day] = self.realized_by_day.get(day, 0) + trade.realized_pnl
                trade.record.realized = float(trade.realized_pnl)  # the ledger's, fees in
                trade.record.closed_at = trade.closed_at  # all it held is sold
                if trade.record.legs:
                    trade.record.legs[-1].reason = trade.exit_reason
        return True

    def trade_open(self, candidate: Candidate, plan: TradePlan, *, now: datetime):
        record = TradeRecord(
            symbol=candidate.symbol,
            execution_symbol=candidate.execution_symbol,
            setup=candidate.setup,
            signal_ts=candidate.bar_ts,
            entry_ts=now,
            entry_price=0.0,
            qty=plan.qty,
            stop=float(plan.stop),
            target_one=None if plan.target_one is None else float(plan.target_one),
            target_two=None if plan.target_two is None else float(plan.target_two),
        )
        trade = SimTrade(
            pk=next(self._ids),
            candidate=candidate,
            qty=plan.qty,
            stop_price=plan.stop,
            target_one=plan.target_one,
            target_two=plan.target_two,
            deadline=plan.deadline,
            created_at=now,
            record=record,
            trail_pct=plan.trail_pct,
            trail_act_pct=plan.trail_act_pct,
        )
        entry = self._order(
            trade,
            role=Role.ENTRY,
            side="buy",
            qty=plan.qty,
            order_type=plan.entry_type,
            price=plan.entry_limit,
            order_class="otoco" if plan.bracket else "equity",
            created_at=now,
        )
        if plan.bracket:
            for role, order_type, price, stop in (
                (Role.TARGET_TWO, "limit", plan.target_two, None),
                (Role.STOP, "stop", None, plan.stop),
            ):
                entry.children.append(
                    self._order(
                        trade,
                        role=role,
                        side="sell",
                        qty=plan.qty,
                        order_type=order_type,
                        price=price,
                        stop_price=stop,
                        order_class="otoco",
                        parent_id=entry.pk,
                        status=OrderState.NEW,
                        created_at=now,
                    )
                )
        self.trades.append(trade)
        self.live.append(trade)
        return trade

    def entry_submit(self, trade, *, now: datetime):
        return next((o for o in trade.orders if o.role == Role.ENTRY and o.is_working), None)

    def entry_sent(self, order, *, config) -> str:
        return "dry_run"

    def entry_replacement(self, order, *, now: datetime):
        rest = order.qty - order.filled_qty
        if rest <= 0:
            return None
        return self._order(
            order.trade,
            role=Role.ENTRY,
            side=order.side,
            qty=rest,
            order_type="market",
            status=OrderState.NEW,
            created_at=now,
        )

    def submit(self, order, *, now: datetime, qty: int | None = None):
        if qty is not None:
            order.qty = qty
        order.status = OrderState.OPEN
        return order

    def signal_decided(self, candidate: Candidate) -> str | None:
        return None  # one decider per candidate in a backtest

    def signal_outcome(self, candidate: Candidate, outcome: str, checks=None, qty=None) -> None:
        record = self._signal_of.get(id(candidate))
        if record is None:
            record = SignalRecord(candidate.symbol, candidate.setup, candidate.bar_ts, outcome)
            self._signal_of[id(candidate)] = record
            self.signals.append(record)
        record.outcome = outcome
        for check in checks or ():
            if not check["passed"] and check["code"] not in record.reasons:
                record.reasons.append(check["code"])
        if qty is not None:
            record.qty = int(qty)

    def signal_record(self, symbol: str, setup: str, bar_ts, outcome: str, reasons) -> None:
        """A signal the strategy stage already decided (execution price missing, policy)."""
        self.signals.append(SignalRecord(symbol, setup, bar_ts, outcome, list(reasons)))

    def mark(self, symbol: str, price: Decimal) -> None:
        self.prices[symbol] = to_cent(price)

    def halt(self, reason: str, *, now: datetime, resume_at=None, resume_state: str = "") -> None:
        self._state_to("HALTED", at=now, reason=reason)
        self.resume_at = resume_at
        self.resume_state = resume_state if resume_at else ""

    def resume(self, *, due: datetime, reason: str) -> bool:
        """Lift the halt at its resume time (recorded at that time, not at the step that
        noticed it: the event and fast modes step different bars)."""
        if self.state != "HALTED" or self.resume_at is None or self.resume_at > due:
            return False
        at, self.resume_at = self.resume_at, None
        self._state_to(self.resume_state or "ACTIVE", at=at, reason=reason)
        self.resume_state = ""
        return True

    def _state_to(self, state: str, *, at: datetime, reason: str) -> None:
        if state != self.state:
            self.state_changes.append(StateChange(at, self.state, state, reason))
        self.state = state

    def flatten(self, *, reason: str, now: datetime) -> None:
        lifecycle.flatten_trades(self, reason=reason, now=now)

    # --- the strategy stage's verdicts ----------------------------------------------------
    def candidates(self, fired) -> list[Candidate]:
        """The fired setups of one bar as the lifecycle's candidates, after what the live
        strategy stage (`strategies.services.evaluate_bar`) decides before risk: a signal
        without an execution price fails; the session policy's checks (all of the bar's
        signals are planned before any is handled) block or give the window and time stop."""
        self._signal_of = {}  # keyed by id(): only this bar's candidates are alive
        plans = [(s, self._policy(s)) for s in fired if s.entry is not None]
        for signal in fired:
            if signal.entry is None:
                self.signal_record(
                    signal.symbol, signal.setup, signal.bar_ts, "failed",
                    ["EXECUTION_PRICE_MISSING"],
                )  # fmt: skip
        out = []
        for signal, (failed, window, time_stop, limit) in plans:
            if failed:
                self.signal_record(
                    signal.symbol, signal.setup, signal.bar_ts, "policy_blocked", failed
                )
                continue
            out.append(
                Candidate(
                    setup=signal.setup,
                    symbol=signal.symbol,
                    execution_symbol=signal.execution_symbol,
                    bar_ts=signal.bar_ts,
                    entry=signal.entry,
                    stop=signal.stop,
                    target_one=signal.target_one,
                    target_two=signal.target_two,
                    time_stop_sec=time_stop,
                    policy_window=window,
                    policy_limit=limit,
                    ref=signal,
                )
            )
        return out

    def _policy(self, signal):
        """(failed policy codes, window, time stop, (start, end, max_trades)) under the book."""
        book = self.policy_book
        if book is None:
            return [], None, None, None
        from strategies import policies
        from strategies.features.sessions import bar_close_et

        close_at = bar_close_et(signal.bar_ts)
        policy = book.active(close_at)
        if policy is None:
            return ["POLICY_NO_SESSION"], None, None, None
        start, end = policies.bar_ts_window(book, policy, close_at.astimezone(book.timezone).date())
        checks = policies.policy_checks(
            policy,
            setup=signal.setup,
            features=signal.row,
            execution_symbol=signal.execution_symbol,
            etf_symbols=self.etf_symbols,
            trades_in_window=self.traded_in_window(start, end),
        )
        failed: list[str] = []
        for check in checks:
            if not check["passed"] and check["code"] not in failed:
                failed.append(check["code"])
        limit = (start, end, policy.max_trades) if policy.max_trades is not None else None
        return failed, (policy.start, policy.end), policy.time_stop_sec, limit

    # --- results --------------------------------------------------------------------------
    def records(self) -> list[TradeRecord]:
        return [t.record for t in self.trades if t.status != TradeState.CANCELLED and t.record.legs]
