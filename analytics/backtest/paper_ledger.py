"""An in-memory twin of the paper trading ledger, for the event-driven backtester.

The live path (`trading.pipeline`, `trading.services`, `trading.exits`) keeps orders, trades and
positions in the database. A backtest cannot afford a database round trip per bar, so this
module keeps the same objects in memory and applies the SAME rules, reusing every pure piece of
the live code:
- fills: `trading.fill_model.fill_price` with the broker's priority order (`ORDER_PRIORITY`);
- entry planning: `trading.services.entry_plan` on the paper broker's synthetic quote;
- bracket levels: `trading.services.bracket_levels`;
- risk: `risk.rules.evaluate` on an `Exposure` gathered here like `exposure_snapshot` does;
- exits: `trading.exits.exit_decide` and `flat_time`.
The glue below (which orders exist when, protect/exit/cancel bookkeeping) mirrors
`trading.services` line by line; the parity test (a recorded paper session re-run here) pins
the two together. Those service functions are DB-bound, so this module is the adapter the
brief allows; making `trade_exit`/`trade_protect` operate on a ledger interface would let both
share one implementation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from analytics.backtest.result import ExitLeg, SignalRecord, TradeRecord
from analytics.backtest.strategy_driver import FiredSignal
from risk import rules
from risk.config import RiskConfig, SymbolParams
from risk.types import Exposure, Intent
from trading.brokers.paper import PaperBroker
from trading.exits import ExitState, exit_decide, flat_time
from trading.fill_model import ORDER_PRIORITY, BarPrices, FillCosts, fill_price
from trading.services import bracket_levels, entry_plan

NY = ZoneInfo("America/New_York")
CENT = Decimal("0.01")
FOUR = Decimal("0.0001")
BAR = timedelta(minutes=1)
TEN_K = Decimal(10000)
EXIT_ROLES = ("exit", "flatten")
PROTECTIVE_ROLES = ("stop", "target_one", "target_two")
MAX_FILL_ROUNDS = 6  # as trading.pipeline.paper_bar_process


def _q(value) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class SimOrder:
    id: int
    trade: SimTrade
    role: str
    side: str
    qty: int
    order_type: str
    created_at: datetime
    price: Decimal | None = None
    stop: Decimal | None = None
    reason: str = ""
    filled_qty: int = 0
    working: bool = True


@dataclass
class SimTrade:
    id: int
    signal: FiredSignal
    qty: int
    stop_price: Decimal
    target_one: Decimal | None
    target_two: Decimal | None
    deadline: datetime
    created_at: datetime
    trail_pct: Decimal | None = None
    trail_act_pct: Decimal | None = None
    status: str = "pending"  # pending, open, closed, cancelled
    remaining_qty: int = 0
    entry_price: Decimal | None = None
    partial_done: bool = False
    trail_high: Decimal | None = None
    trail_active: bool = False
    exit_reason: str = ""
    realized_pnl: Decimal = Decimal("0")
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    orders: list[SimOrder] = field(default_factory=list)
    record: TradeRecord | None = None

    def working(self, roles) -> list[SimOrder]:
        return [o for o in self.orders if o.working and o.role in roles]


@dataclass
class _Position:
    qty: int = 0
    avg_price: Decimal = Decimal("0")


class PaperLedger:
    """Orders, trades, positions and cash of one backtest, advanced bar by bar."""

    def __init__(
        self,
        *,
        risk: RiskConfig,
        costs: FillCosts,
        starting_cash: Decimal,
        params: dict[str, SymbolParams],
        flatten_before_close_min: int,
        worst_case: bool = False,
        policy_book=None,
        etf_symbols: frozenset[str] = frozenset(),
    ) -> None:
        self.risk = risk
        self.costs = costs
        self.cash = Decimal(starting_cash)
        self.params = params
        self.flatten_before_close_min = flatten_before_close_min
        self.worst_case = worst_case
        self.policy_book = policy_book
        self.etf_symbols = etf_symbols
        self._ids = itertools.count(1)
        self.trades: list[SimTrade] = []  # every trade ever opened, in creation order
        self.live: list[SimTrade] = []  # pending or open
        self.orders_by_symbol: dict[str, list[SimOrder]] = {}
        self.positions: dict[str, _Position] = {}
        self.signals: list[SignalRecord] = []
        self._broker = PaperBroker(costs=costs)  # only its synthetic quote is used
        self.halted = False  # the daily-loss kill switch fired (live: until an operator resumes)
        self.last_price: dict[str, Decimal] = {}  # Position.last_price: last fill or mark
        self.realized_by_day: dict = {}  # New York date -> realized P&L of trades closed then

    # --- orders ---------------------------------------------------------------------------
    def _order(self, trade: SimTrade, **kwargs) -> SimOrder:
        order = SimOrder(id=next(self._ids), trade=trade, **kwargs)
        trade.orders.append(order)
        self.orders_by_symbol.setdefault(trade.signal.execution_symbol, []).append(order)
        return order

    def _cancel(self, order: SimOrder) -> None:
        """services.order_cancel: a never-filled entry's trade is cancelled with it."""
        if not order.working:
            return
        order.working = False
        trade = order.trade
        pending = trade.status == "pending" and trade.remaining_qty == 0
        if order.role == "entry" and pending and not trade.working(("entry",)):
            self._trade_close(trade, order.created_at, "cancelled", "entry_cancelled")

    # --- the ledger ----------------------------------------------------------------------
    def _fill_apply(self, order: SimOrder, qty: int, price: Decimal, ts: datetime) -> bool:
        qty = min(qty, order.qty - order.filled_qty)
        if qty <= 0 or not order.working:
            return False
        price = _q(price)
        order.filled_qty += qty
        if order.filled_qty >= order.qty:
            order.working = False
        self._position_apply(order.trade.signal.execution_symbol, order.side, qty, price)
        trade = order.trade
        if order.side == "buy":
            self._entry_filled(trade, qty, price, ts)
        else:
            self._exit_filled(trade, order, qty, price, ts)
        return True

    def _position_apply(self, symbol: str, side: str, qty: int, price: Decimal) -> None:
        position = self.positions.setdefault(symbol, _Position())
        signed = qty if side == "buy" else -qty
        self.cash += -price * qty if side == "buy" else price * qty
        old = position.qty
        new = old + signed
        if old == 0 or (old > 0) == (signed > 0):
            total = abs(old) + abs(signed)
            position.avg_price = (position.avg_price * abs(old) + price * abs(signed)) / total
        elif abs(signed) > abs(old):
            position.avg_price = price
        elif new == 0:
            position.avg_price = Decimal("0")
        position.qty = new
        position.avg_price = Decimal(position.avg_price).quantize(FOUR)
        self.last_price[symbol] = price

    def _entry_filled(self, trade: SimTrade, qty: int, price: Decimal, ts: datetime) -> None:
        held = trade.remaining_qty
        entry = trade.entry_price or Decimal("0")
        trade.entry_price = ((entry * held + price * qty) / (held + qty)).quantize(FOUR)
        trade.remaining_qty = held + qty
        if trade.status == "pending":
            trade.status = "open"
            trade.opened_at = ts
            trade.trail_high = price
            trade.record.entry_ts = ts
        trade.record.entry_price = float(trade.entry_price)
        self._protect(trade, ts)

    def _exit_filled(self, trade, order: SimOrder, qty: int, price: Decimal, ts) -> None:
        entry = trade.entry_price or price
        trade.realized_pnl += (price - entry) * qty
        trade.remaining_qty = max(0, trade.remaining_qty - qty)
        reason = order.reason or order.role
        trade.record.legs.append(ExitLeg(ts=ts, qty=qty, price=float(price), reason=reason))
        if trade.remaining_qty == 0:
            final = trade.exit_reason or {"stop": "stop"}.get(order.role, order.role)
            for other in trade.orders:
                if other is not order:
                    self._cancel(other)
            self._trade_close(trade, ts, "closed", final)
            trade.record.legs[-1].reason = final

    def _trade_close(self, trade: SimTrade, now: datetime, status: str, reason: str) -> None:
        trade.status = status
        trade.closed_at = now
        trade.exit_reason = trade.exit_reason or reason
        if trade in self.live:
            self.live.remove(trade)
        if status == "closed":
            day = now.astimezone(NY).date()
            self.realized_by_day[day] = self.realized_by_day.get(day, 0) + trade.realized_pnl

    def _protect(self, trade: SimTrade, now: datetime) -> None:
        """services.trade_protect: exactly one working stop for what is not being exited."""
        if trade.status != "open" or trade.remaining_qty <= 0:
            return
        exiting = sum(o.qty - o.filled_qty for o in trade.working(EXIT_ROLES + ("target_one",)))
        needed = trade.remaining_qty - exiting
        keep = None
        for stop in trade.working(("stop",)):
            if keep is None and stop.qty - stop.filled_qty == needed and needed > 0:
                keep = stop
                continue
            self._cancel(stop)
        if needed <= 0:
            return
        if keep is not None:
            keep.stop = _q(trade.stop_price)
            return
        self._order(
            trade,
            role="stop",
            side="sell",
            qty=needed,
            order_type="stop",
            stop=_q(trade.stop_price),
            created_at=now,
        )

    def _exit(self, trade: SimTrade, qty: int | None, reason: str, now, new_stop=None) -> int:
        """services.trade_exit: market out (all or `qty`), never twice, rest kept protected.
        Returns 1 when an exit order was placed."""
        if trade.status != "open" or trade.remaining_qty <= 0:
            return 0
        if trade.working(EXIT_ROLES):
            return 0
        qty = trade.remaining_qty if qty is None else min(int(qty), trade.remaining_qty)
        if qty <= 0:
            return 0
        full = qty >= trade.remaining_qty
        for leg in trade.working(PROTECTIVE_ROLES):
            self._cancel(leg)
        if full:
            trade.exit_reason = reason
        if new_stop is not None:
            trade.stop_price = _q(new_stop)
        self._order(
            trade,
            role="exit",
            side="sell",
            qty=qty,
            order_type="market",
            reason=reason,
            created_at=now,
        )
        if not full:
            self._protect(trade, now)
        return 1

    # --- one bar ----------------------------------------------------------------------------
    def _fill_price(self, order: SimOrder, bar: BarPrices) -> Decimal | None:
        price = fill_price(
            side=order.side,
            order_type=order.order_type,
            bar=bar,
            costs=self.costs,
            price=order.price,
            stop=order.stop,
        )
        if price is None or not self.worst_case:
            return price
        # Worst case: a limit needs the bar to trade THROUGH it, a triggered stop fills at the
        # bar's extreme (then the usual spread + slippage).
        if order.order_type == "limit":
            through = bar.low < order.price if order.side == "buy" else bar.high > order.price
            return price if through else None
        if order.order_type == "stop":
            factor = self.costs.adverse_bps / TEN_K
            if order.side == "buy":
                return (bar.high * (1 + factor)).quantize(CENT, rounding=ROUND_HALF_UP)
            return (bar.low * (1 - factor)).quantize(CENT, rounding=ROUND_HALF_UP)
        return price

    def fills_on_bar(self, symbol: str, ts: datetime, bar: BarPrices) -> int:
        """trading.pipeline.paper_bar_process: working orders placed up to the bar's start fill
        on it (conservative priority); timed-out pegged entry limits become market orders that
        fill on the same bar; orders created meanwhile (a stop after an entry) are eligible."""
        orders = self.orders_by_symbol.get(symbol)
        if not orders:
            return 0
        bar_end = ts + BAR
        timeout = timedelta(seconds=self.risk.entry_limit_timeout_sec)
        count = 0
        for _ in range(MAX_FILL_ROUNDS):
            eligible = [o for o in orders if o.working and o.created_at <= ts]
            if not eligible:
                break
            ranked = sorted(eligible, key=lambda o: (ORDER_PRIORITY.get(o.order_type, 9), o.id))
            fills = []
            for order in ranked:
                open_qty = order.qty - order.filled_qty
                if open_qty <= 0:
                    continue
                price = self._fill_price(order, bar)
                if price is not None:
                    fills.append((order, open_qty, price))
            applied = sum(self._fill_apply(o, qty, price, ts) for o, qty, price in fills)
            filled = {o.id for o, _, _ in fills}
            replaced = 0
            for order in eligible:
                if (
                    order.id not in filled
                    and order.role == "entry"
                    and order.order_type == "limit"
                    and order.created_at + timeout < bar_end
                ):
                    replaced += self._entry_limit_replace(order, ts)
            count += applied
            if not applied and not replaced:
                break
        self.orders_by_symbol[symbol] = [o for o in orders if o.working]
        return count

    def _entry_limit_replace(self, order: SimOrder, now: datetime) -> int:
        self._cancel(order)
        rest = order.qty - order.filled_qty
        if rest <= 0:
            return 0
        trade = order.trade
        if trade.status == "cancelled":
            trade.status = "pending"
            trade.closed_at = None
            trade.exit_reason = ""
            if trade not in self.live:
                self.live.append(trade)
                self.live.sort(key=lambda t: t.id)
        self._order(trade, role="entry", side="buy", qty=rest, order_type="market", created_at=now)
        return 1

    def exits_on_bar(
        self, symbol: str, now: datetime, bar: BarPrices, cross_down: dict[str, bool]
    ) -> int:
        """trading.exits.exits_manage for the open trades executing in `symbol`.
        `cross_down` maps signal symbol → ema_20 crossed below ema_50 on this bar."""
        flat_at = flat_time(now, self.flatten_before_close_min)
        done = 0
        for trade in [
            t for t in self.live if t.status == "open" and t.signal.execution_symbol == symbol
        ]:
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
            )
            action = exit_decide(
                state,
                now=now,
                bar=bar,
                flat_at=flat_at,
                partial_exit_pct=self.risk.partial_exit_pct,
                ema_cross_down=cross_down.get(trade.signal.symbol, False),
            )
            trade.trail_high = action.trail_high
            trade.trail_active = action.trail_active
            trade.partial_done = action.partial_done
            if action.kind == "full":
                done += self._exit(trade, None, action.reason, now)
            elif action.kind == "partial":
                done += self._exit(trade, action.qty, action.reason, now, new_stop=action.new_stop)
            elif action.kind == "stop":
                trade.stop_price = action.new_stop
                self._protect(trade, now)
                done += 1
            elif not trade.working(("stop",)) and not trade.working(EXIT_ROLES):
                self._protect(trade, now)
                done += 1
        return done

    # --- entries ----------------------------------------------------------------------------
    def _exposure(self, now: datetime) -> Exposure:
        by_symbol: dict[str, int] = {}
        open_orders = 0
        for trade in self.live:
            sym = trade.signal.execution_symbol
            by_symbol[sym] = by_symbol.get(sym, 0) + 1
            open_orders += sum(
                1 for o in trade.orders if o.working and o.role not in PROTECTIVE_ROLES
            )
        notional = {s: abs(p.qty) * p.avg_price for s, p in self.positions.items() if p.qty != 0}
        return Exposure(
            open_trades=len(self.live),
            open_orders=open_orders,
            trades_by_symbol=by_symbol,
            notional_by_symbol=notional,
            cash=self.cash,
            buying_power=self.cash,
            day_pnl=self.day_pnl(now) if self.risk.max_daily_loss_usd > 0 else Decimal("0"),
            trading_state="HALTED" if self.halted else "ACTIVE",
        )

    # --- marks and the daily-loss kill switch (trading.pipeline.kill_switch_check) ---------
    def day_pnl(self, now: datetime) -> Decimal:
        """trading.selectors.day_pnl: trades closed today + open trades' realized part +
        their unrealized P&L at the last price."""
        total = Decimal(self.realized_by_day.get(now.astimezone(NY).date(), 0))
        for trade in self.live:
            if trade.status != "open":
                continue
            total += trade.realized_pnl
            last = self.last_price.get(trade.signal.execution_symbol)
            if last is not None and trade.entry_price is not None and trade.remaining_qty:
                total += (last - trade.entry_price) * trade.remaining_qty
        return total

    def mark_and_guard(self, symbol: str, close: float, now: datetime) -> None:
        """Mark the symbol to the bar's close, then the kill switch: at -RISK_MAX_DAILY_LOSS_USD
        halt (for the rest of the run, as live until an operator resumes) and flatten."""
        self.last_price[symbol] = _q(close)
        limit = self.risk.max_daily_loss_usd
        if limit <= 0 or self.halted or self.day_pnl(now) > -limit:
            return
        self.halted = True
        for trade in list(self.live):  # services.positions_flatten
            for entry in trade.working(("entry",)):
                self._cancel(entry)
            if trade.status == "open":
                self._exit(trade, None, "kill_switch", now)

    def signals_handle(self, signals: list[FiredSignal], now: datetime) -> None:
        """The fired setups of one bar: session-policy checks for all of them first (as
        `strategies.services.evaluate_bar` plans them before any is handled), then risk and
        entry for each that passed (`trading.pipeline.signal_handle`)."""
        plans = [(s, self._policy(s)) for s in signals if s.entry is not None]
        for signal in signals:
            if signal.entry is None:
                self.signal_failed(signal.symbol, signal.setup, signal.bar_ts)
        for signal, (failed, window, time_stop) in plans:
            if failed:
                self.signals.append(
                    SignalRecord(
                        signal.symbol, signal.setup, signal.bar_ts, "policy_blocked", failed
                    )  # fmt: skip
                )
                continue
            self.signal_handle(signal, now, policy_window=window, time_stop_sec=time_stop)

    def _policy(self, signal: FiredSignal):
        """(failed policy codes, policy window, time stop) of `signal` under the book."""
        book = self.policy_book
        if book is None:
            return [], None, None
        from strategies import policies
        from strategies.features.sessions import bar_close_et

        close_at = bar_close_et(signal.bar_ts)
        policy = book.active(close_at)
        if policy is None:
            return ["POLICY_NO_SESSION"], None, None
        start, end = policies.bar_ts_window(book, policy, close_at.astimezone(book.timezone).date())
        traded = sum(1 for s in self.signals if s.outcome == "dry_run" and start <= s.bar_ts < end)
        checks = policies.policy_checks(
            policy,
            setup=signal.setup,
            features=signal.row,
            execution_symbol=signal.execution_symbol,
            etf_symbols=self.etf_symbols,
            trades_in_window=traded,
        )
        failed: list[str] = []
        for check in checks:
            if not check["passed"] and check["code"] not in failed:
                failed.append(check["code"])
        return failed, (policy.start, policy.end), policy.time_stop_sec

    def signal_handle(
        self, signal: FiredSignal, now: datetime, *, policy_window=None, time_stop_sec=None
    ) -> str:
        """trading.pipeline.signal_handle: risk, then the trade and its entry order."""
        params = self.params[signal.execution_symbol]
        stop, t1, t2, use_otoco = bracket_levels(
            entry=signal.entry,
            params=params,
            stop=signal.stop,
            t1=signal.target_one,
            t2=signal.target_two,
        )
        if use_otoco:
            raise ValueError("STOP_PCT + TP_PCT brackets (OTOCO) are not simulated by backtests")
        intent = Intent(
            symbol=signal.execution_symbol,
            entry_price=signal.entry,
            stop_price=stop,
            setup=signal.setup,
            signal_symbol=signal.symbol,
            policy_window=policy_window,
        )
        decision = rules.evaluate(intent, self._exposure(now), self.risk, now, params)
        if not decision.approved:
            self.signals.append(
                SignalRecord(
                    signal.symbol,
                    signal.setup,
                    signal.bar_ts,
                    "risk_blocked",
                    decision.reasons,
                    decision.qty,
                )  # fmt: skip
            )
            return "risk_blocked"
        quote = self._broker.quote_around(signal.execution_symbol, signal.entry)
        order_type, limit, _why = entry_plan(
            side="buy", ref_price=signal.entry, quote=quote, config=self.risk
        )
        trade = SimTrade(
            id=next(self._ids),
            signal=signal,
            qty=decision.qty,
            stop_price=_q(stop),
            target_one=_q(t1),
            target_two=_q(t2),
            deadline=now
            + (
                timedelta(seconds=float(time_stop_sec))
                if time_stop_sec
                else timedelta(minutes=self.risk.trade_timeout_min)
            ),
            created_at=now,
            trail_pct=params.trail_pct,
            trail_act_pct=params.trail_act_pct,
        )
        trade.record = TradeRecord(
            symbol=signal.symbol,
            execution_symbol=signal.execution_symbol,
            setup=signal.setup,
            signal_ts=signal.bar_ts,
            entry_ts=now,
            entry_price=0.0,
            qty=decision.qty,
            stop=float(trade.stop_price),
            target_one=None if trade.target_one is None else float(trade.target_one),
            target_two=None if trade.target_two is None else float(trade.target_two),
        )
        self._order(
            trade,
            role="entry",
            side="buy",
            qty=decision.qty,
            order_type=str(order_type),
            price=limit,
            created_at=now,
        )
        self.trades.append(trade)
        self.live.append(trade)
        self.signals.append(
            SignalRecord(signal.symbol, signal.setup, signal.bar_ts, "dry_run", [], decision.qty)
        )
        return "dry_run"

    def signal_failed(self, symbol: str, setup: str, bar_ts: datetime) -> None:
        self.signals.append(
            SignalRecord(symbol, setup, bar_ts, "failed", ["EXECUTION_PRICE_MISSING"])
        )

    def records(self) -> list[TradeRecord]:
        return [t.record for t in self.trades if t.status != "cancelled" and t.record.legs]
