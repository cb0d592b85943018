"""Money-safety figures of a backtest's trade list: the cash path, gross exposure, duplicated
ideas and how much a stop-out loses against the risk budget, overall and per setup.

Read from the trades alone (entries at their fill bar, exits at theirs), so the same figures
come out of any run, before or after a change. Within one bar the entries are taken before the
exits: the lowest cash and the highest exposure a bar can have.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from analytics.backtest.result import TradeRecord

PLAIN_STOP_BP = 5.0  # a stop fill within 5 bp of the stop price: not a gap


def cash_and_exposure(trades: Iterable[TradeRecord], starting_cash: float) -> dict:
    """min cash and max gross exposure (at cost) over every bar with a fill."""
    entries: dict = defaultdict(list)
    exits: dict = defaultdict(list)
    for trade in trades:
        entries[trade.entry_ts].append(trade)
        for leg in trade.legs:
            exits[leg.ts].append((trade, leg))
    cash = starting_cash
    min_cash, min_cash_at = starting_cash, None
    held: dict[int, float] = {}  # id(trade) -> notional at cost still held
    max_gross, max_gross_at = 0.0, None
    for ts in sorted(set(entries) | set(exits)):
        for trade in entries.get(ts, ()):
            cash -= trade.qty * trade.entry_price
            held[id(trade)] = trade.qty * trade.entry_price
        gross = sum(held.values())
        if cash < min_cash:
            min_cash, min_cash_at = cash, ts
        if gross > max_gross:
            max_gross, max_gross_at = gross, ts
        for trade, leg in exits.get(ts, ()):
            cash += leg.qty * leg.price
            left = held.get(id(trade), 0.0) - leg.qty * trade.entry_price
            if left <= 1e-9:
                held.pop(id(trade), None)
            else:
                held[id(trade)] = left
    return {
        "min_cash": round(min_cash, 2),
        "min_cash_at": None if min_cash_at is None else min_cash_at.isoformat(),
        "max_gross_exposure": round(max_gross, 2),
        "max_gross_at": None if max_gross_at is None else max_gross_at.isoformat(),
    }


def duplicated_ideas(trades: Iterable[TradeRecord], window_sec: int) -> int:
    """Trades of a setup in an execution symbol that started while another trade of the same
    setup and symbol was held, or within `window_sec` of its signal."""
    by_idea: dict = defaultdict(list)
    for trade in trades:
        by_idea[(trade.setup, trade.execution_symbol)].append(trade)
    count = 0
    window = timedelta(seconds=window_sec)
    for group in by_idea.values():
        group.sort(key=lambda t: (t.signal_ts, t.entry_ts))
        for earlier, later in zip(group, group[1:], strict=False):
            held_until = earlier.exit_ts or later.signal_ts
            if later.signal_ts <= max(held_until, earlier.signal_ts + window):
                count += 1
    return count


def stopouts(trades: Iterable[TradeRecord], risk_usd: float) -> dict:
    """Loss / risk budget of trades that ended on their stop: plain (filled within 5 bp of
    the stop) and gapped apart."""
    plain: list[float] = []
    gapped: list[float] = []
    for trade in trades:
        if not trade.legs or trade.legs[-1].reason != "stop" or risk_usd <= 0:
            continue
        leg = trade.legs[-1]
        ratio = -trade.pnl / risk_usd
        gap_bp = (trade.stop - leg.price) / trade.stop * 10_000 if trade.stop else 0.0
        (plain if gap_bp <= PLAIN_STOP_BP else gapped).append(ratio)
    return {
        "plain": len(plain),
        "plain_worst_loss_over_risk": round(max(plain), 4) if plain else None,
        "plain_mean_loss_over_risk": round(sum(plain) / len(plain), 4) if plain else None,
        "gapped": len(gapped),
        "gapped_worst_loss_over_risk": round(max(gapped), 4) if gapped else None,
    }


def money_figures(
    trades: list[TradeRecord], *, starting_cash: float, risk_usd: float, window_sec: int
) -> dict:
    """Everything above, overall, plus per setup the stop-out figures and the sizes."""
    per_setup = {}
    for setup in sorted({t.setup for t in trades}):
        mine = [t for t in trades if t.setup == setup]
        notional = sorted(t.qty * t.entry_price for t in mine)
        per_setup[setup] = {
            "trades": len(mine),
            "median_notional": round(notional[len(notional) // 2], 2) if notional else None,
            **stopouts(mine, risk_usd),
        }
    return {
        **cash_and_exposure(trades, starting_cash),
        "trades": len(trades),
        "duplicated_ideas": duplicated_ideas(trades, window_sec),
        **stopouts(trades, risk_usd),
        "per_setup": per_setup,
    }
