"""Pure helpers that turn ledger rows into the money-safety fields of `risk.types.Exposure`.

The lifecycle core's `exposure()` reads the rows INSIDE the decision lock (live, paper and
backtests alike) and calls these, so what an entry in flight reserves, what counts as one idea
and what live trades could still lose are each computed in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from risk.costs import CostModel
from risk.sizing import stopout_loss

_ZERO = Decimal("0")


@dataclass(frozen=True)
class WorkingEntry:
    """The unfilled part of one working entry order (a buy)."""

    symbol: str
    qty: int  # unfilled shares
    limit_price: Decimal | None  # None for a market order
    reference_price: Decimal  # the signal's price the entry was planned on


def entry_worst_price(entry: WorkingEntry, costs: CostModel) -> Decimal:
    """The most an entry in flight can pay per share: a market order fills at the reference
    worsened by half the spread and the slippage; a pegged limit pays at most its limit, but
    it becomes a market order after ENTRY_LIMIT_TIMEOUT_SEC, so the larger of the two."""
    market = costs.market_fill("buy", entry.reference_price)
    if entry.limit_price is None:
        return market
    return max(Decimal(entry.limit_price), market)


def pending_totals(
    entries: Iterable[WorkingEntry], costs_for: Callable[[str], CostModel]
) -> tuple[dict[str, Decimal], Decimal]:
    """(pending_notional_by_symbol, pending_cash) of the working entries."""
    by_symbol: dict[str, Decimal] = {}
    for entry in entries:
        if entry.qty <= 0:
            continue
        symbol = entry.symbol.upper()
        costs = costs_for(symbol)
        price = entry_worst_price(entry, costs)
        amount = price * entry.qty + costs.fees("buy", entry.qty, price)
        by_symbol[symbol] = by_symbol.get(symbol, _ZERO) + amount
    return by_symbol, sum(by_symbol.values(), _ZERO)


@dataclass(frozen=True)
class IdeaRow:
    setup: str
    execution_symbol: str
    decided_at: datetime
    live: bool  # pending or open


def ideas_in_window(
    rows: Iterable[IdeaRow], *, now: datetime, window_sec: int
) -> tuple[tuple[str, str, datetime], ...]:
    """The ideas that block the same setup on the same execution symbol: every live trade,
    and finished ones decided within `window_sec` before `now`, never after it (an SPX signal
    and its SPY proxy's signal a few bars apart are one idea, whatever became of the first
    trade)."""
    since = now - timedelta(seconds=window_sec)
    return tuple(
        (row.setup, row.execution_symbol.upper(), row.decided_at)
        for row in rows
        if row.setup and (row.live or since <= row.decided_at <= now)
    )


@dataclass(frozen=True)
class LiveTrade:
    """A pending or open trade as the daily-loss rule sees it."""

    symbol: str
    qty: int  # shares held, or to be bought for a pending entry
    entry_price: Decimal  # average fill, or the worst-case entry price when pending
    stop_price: Decimal | None


def open_risk(trades: Iterable[LiveTrade], costs_for: Callable[[str], CostModel]) -> Decimal:
    """What the live trades lose in total if each is stopped out now (a trade without a stop
    counts its whole entry value: nothing bounds it)."""
    total = _ZERO
    for trade in trades:
        if trade.qty <= 0:
            continue
        if trade.stop_price is None:
            total += trade.entry_price * trade.qty
            continue
        loss = stopout_loss(
            qty=trade.qty,
            fill=trade.entry_price,
            stop=trade.stop_price,
            costs=costs_for(trade.symbol.upper()),
        )
        total += max(loss, _ZERO)
    return total


def money_exposure(
    *,
    now: datetime,
    working_entries: Iterable[WorkingEntry],
    idea_rows: Iterable[IdeaRow],
    live_trades: Iterable[LiveTrade],
    window_sec: int,
    costs_for: Callable[[str], CostModel],
) -> dict:
    """The money-safety fields of `Exposure` in one call (the core's exposure() passes its
    ledger rows): Exposure(**counts, **money_exposure(...))."""
    by_symbol, cash = pending_totals(working_entries, costs_for)
    return {
        "pending_notional_by_symbol": by_symbol,
        "pending_cash": cash,
        "ideas": ideas_in_window(idea_rows, now=now, window_sec=window_sec),
        "open_risk": open_risk(live_trades, costs_for),
    }
