"""One closed bar, in the one order every path follows (live, paper, replay, backtests and
the decision benchmark):

1. fills: working paper orders of the bar's symbol fill on it (decided at an earlier close);
2. strategy: the engine and setups evaluate the bar (the caller's `strategy` callable);
3. exits: the exit manager for open trades executing in the bar's symbol;
4. marks and the kill switch: the symbol is marked to the close where something is held,
   then the daily-loss limit is checked;
5. signals -> risk -> entries: each fired setup through `lifecycle.signal_decide`.

Between bars the clock moves on its own (`clock_step`, the exit manager's beat live; every
minute boundary in replays and backtests): the clock rules (session-close flatten, time stops)
fire for every open trade whether or not its symbol printed a bar, and on paper a market order
whose symbol printed nothing fills at the last close (`lifecycle.fills_without_bar`).
A daily-loss halt lifts at the next trading day's open (`lifecycle.halt_lift`): on the clock,
and on a bar step before its signals are decided (a backtest's clock sleeps while nothing is
alive).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from risk.config import RiskConfig, SymbolParams
from trading.core import lifecycle
from trading.core.fills import BarPrices, FillCosts
from trading.core.types import Candidate

BAR = timedelta(minutes=1)


@dataclass(frozen=True)
class StepContext:
    """What a bar step reads besides the ledger, built once per run (or per bar live)."""

    config: RiskConfig
    params: Callable[[str], SymbolParams]  # execution symbol -> its risk values
    flat_at: Callable[[datetime], datetime | None]  # when positions must be flat that day
    costs: FillCosts | None = None  # None: fills come from a live broker, not from bars
    cross_down: Callable[[str], bool] | None = None  # signal symbol -> EMA crossed down now
    escalate_by_clock: bool = False  # live: entry limits go to market on the clock
    on_error: Callable[[Candidate, Exception], None] | None = None  # None: errors propagate
    on_decided: Callable[[Candidate, str], None] | None = None


@dataclass
class StepResult:
    fills: int = 0
    managed: list = field(default_factory=list)
    candidates: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)


def bar_step(
    ledger,
    *,
    symbol: str,
    ts: datetime,
    bar: BarPrices | Callable[[], BarPrices],
    strategy: Callable[[], list[Candidate]],
    ctx: StepContext,
) -> StepResult:
    """Everything the bar of `symbol` starting at `ts` triggers, decided at its close.
    `bar` may be a callable building the prices on first use (most bars of a backtest touch
    no order and no trade)."""
    now = ts + BAR
    config = ctx.config
    result = StepResult()
    if callable(bar):
        bar = _Lazy(bar)
    if ctx.costs is not None and ledger.has_orders(symbol):
        result.fills = lifecycle.fills_on_bar(
            ledger,
            symbol=symbol,
            bar=bar.get() if isinstance(bar, _Lazy) else bar,
            ts=ts,
            costs=costs_of(ctx, symbol),
            limit_timeout=timedelta(seconds=config.entry_limit_timeout_sec),
        )
    result.candidates = strategy() or []
    if ledger.may_have_open(symbol):
        result.managed = lifecycle.manage_exits(
            ledger,
            now=now,
            symbol=symbol,
            bar=bar.get() if isinstance(bar, _Lazy) else bar,
            flat_at=ctx.flat_at(now),
            partial_exit_pct=config.partial_exit_pct,
            cross_down=ctx.cross_down,
        )
    if result.fills or result.managed or ledger.has_live(symbol):
        # mark to market only where something is held (nothing to mark on an idle bar)
        ledger.mark(symbol, (bar.get() if isinstance(bar, _Lazy) else bar).close)
        lifecycle.kill_switch(ledger, now=now, config=config)
    if ctx.escalate_by_clock:
        lifecycle.escalate_due(ledger, now=now, config=config)
    if result.candidates:  # a day's halt ends at the next open, before that day decides
        lifecycle.halt_lift(ledger, now=now)
    for candidate in result.candidates:
        try:
            outcome = lifecycle.signal_decide(
                ledger,
                candidate,
                now=now,
                config=config,
                params=ctx.params(candidate.execution_symbol),
            )
        except Exception as exc:
            if ctx.on_error is None:
                raise
            ctx.on_error(candidate, exc)
            outcome = "failed"
        result.outcomes.append(outcome)
        if ctx.on_decided is not None:
            ctx.on_decided(candidate, outcome)
    return result


def costs_of(ctx: StepContext, symbol: str) -> FillCosts:
    """The fill model of `symbol`: the run's fill model (account-wide cost model, options)
    with the symbol's own cost model when its override changes it (`SymbolParams.costs`)."""
    return ctx.costs.for_model(symbol_model(ctx.config, ctx.params(symbol)))


def symbol_model(config: RiskConfig, params: SymbolParams):
    """The symbol's cost model when an override makes it differ from the account-wide one
    (else None: the fill model's own)."""
    model = getattr(params, "costs", None)
    return model if model is not None and model != config.costs else None


def clock_step(ledger, *, now: datetime, ctx: StepContext) -> list:
    """What the clock alone triggers at `now`, with no bar: on paper, market orders whose
    symbol printed no bar fill at its last close; the clock exit rules (session close, time
    stop) for every open trade; live, timed-out entry limits go to market; then the kill
    switch. Returns the exit manager's actions."""
    config = ctx.config
    timeout = timedelta(seconds=config.entry_limit_timeout_sec)
    lifecycle.halt_lift(ledger, now=now)
    if ctx.costs is not None:
        lifecycle.fills_without_bar(
            ledger, now=now, costs_for=lambda s: costs_of(ctx, s), limit_timeout=timeout
        )
    if ctx.escalate_by_clock:
        lifecycle.escalate_due(ledger, now=now, config=config)
    managed = lifecycle.manage_exits(
        ledger,
        now=now,
        symbol=None,
        bar=None,
        flat_at=ctx.flat_at(now),
        partial_exit_pct=config.partial_exit_pct,
    )
    lifecycle.kill_switch(ledger, now=now, config=config)
    return managed


def clock_until(ledger, *, last: datetime | None, until: datetime, ctx: StepContext):
    """Run `clock_step` at each minute boundary after `last` up to and including `until`
    while anything is alive in the ledger (nothing alive: the clock has nothing to do).
    Returns the last boundary stepped (or `until`)."""
    if last is None or until <= last:
        return until if last is None else last
    tick = last + BAR
    while tick <= until:
        if not ledger.anything_alive():
            return until
        clock_step(ledger, now=tick, ctx=ctx)
        tick += BAR
    return until


def clock_end(last_bar_ts: datetime, ctx: StepContext) -> datetime:
    """How far the clock runs after a run's last bar: three minutes past that day's flat time
    (the flatten is placed at it and, with no bar, filled `lifecycle.BARLESS_AFTER` later), or
    the last bar's close when that is later or the day has no session."""
    last_close = last_bar_ts + BAR
    flat = ctx.flat_at(last_close)
    if flat is None:
        return last_close
    return max(last_close, flat + lifecycle.BARLESS_AFTER + BAR)


class _Lazy:
    """Bar prices built once, when a step first needs them."""

    __slots__ = ("_make", "_value")

    def __init__(self, make) -> None:
        self._make = make
        self._value = None

    def get(self) -> BarPrices:
        if self._value is None:
            self._value = self._make()
        return self._value
