"""Trade statistics shared by the backtester, the signal replay and sweeps.

Pure functions over plain numbers, so the same figures come out of a backtest, a recorded
paper session or a sweep. Money figures are floats here (analysis); the ledger keeps Decimals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np

TRADING_DAYS_PER_YEAR = 252


@dataclass(frozen=True)
class TradeStats:
    """Summary of a list of trade results (P&L in dollars, or returns for signal replays)."""

    trades: int
    wins: int
    losses: int
    win_rate: float | None
    expectancy: float | None
    avg_win: float | None
    avg_loss: float | None
    profit_factor: float | None
    total_pnl: float
    max_drawdown: float
    sharpe_daily: float | None

    def as_dict(self) -> dict:
        return {k: _json_number(v) for k, v in asdict(self).items()}


def _json_number(value):
    """JSON has no infinity/NaN: an unbounded profit factor is reported as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float):
        return round(value, 6)
    return value


def max_drawdown(pnls: Sequence[float]) -> float:
    """Largest peak-to-trough fall of the cumulative P&L (a positive number, 0 when none).
    The curve starts at 0 so a first losing trade counts as drawdown."""
    if len(pnls) == 0:
        return 0.0
    equity = np.concatenate(([0.0], np.cumsum(np.asarray(pnls, dtype=float))))
    peaks = np.maximum.accumulate(equity)
    return float(np.max(peaks - equity))


def drawdown_curve(equity: Sequence[float]) -> np.ndarray:
    """Drawdown (<= 0) of an equity curve at every point."""
    values = np.asarray(equity, dtype=float)
    if values.size == 0:
        return values
    return values - np.maximum.accumulate(values)


def sharpe_of_daily(daily_pnl: Sequence[float], *, capital: float | None = None) -> float | None:
    """Annualised Sharpe ratio of daily P&L (risk-free rate 0): mean/std·√252.

    With `capital` the daily P&L is first turned into returns (the ratio is scale-free either
    way; capital only matters for readability). None with fewer than two days or no variance."""
    values = np.asarray(daily_pnl, dtype=float)
    if capital:
        values = values / capital
    if values.size < 2:
        return None
    std = float(np.std(values, ddof=1))
    if std == 0 or not math.isfinite(std):
        return None
    return float(np.mean(values) / std * math.sqrt(TRADING_DAYS_PER_YEAR))


def daily_totals(pnls: Iterable[float], days: Iterable[date]) -> dict[date, float]:
    """Sum P&L by session date (the date a trade closed, America/New_York)."""
    totals: dict[date, float] = {}
    for pnl, day in zip(pnls, days, strict=True):
        totals[day] = totals.get(day, 0.0) + float(pnl)
    return dict(sorted(totals.items()))


def trade_stats(
    pnls: Sequence[float], *, days: Sequence[date] | None = None, all_days: Sequence[date] = ()
) -> TradeStats:
    """Statistics of trades in chronological order.

    `days` (the close date of each trade) enables the daily Sharpe; `all_days` adds sessions with
    no trade as zero-P&L days so a setup that trades rarely is not flattered."""
    values = [float(p) for p in pnls]
    n = len(values)
    wins = [p for p in values if p > 0]
    losses = [p for p in values if p < 0]
    gross_win = sum(wins)
    gross_loss = -sum(losses)
    if gross_loss > 0:
        profit_factor: float | None = gross_win / gross_loss
    elif gross_win > 0:
        profit_factor = math.inf
    else:
        profit_factor = None
    sharpe = None
    if days is not None:
        per_day = daily_totals(values, days)
        for day in all_days:
            per_day.setdefault(day, 0.0)
        sharpe = sharpe_of_daily(list(per_day.values()))
    return TradeStats(
        trades=n,
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / n if n else None,
        expectancy=sum(values) / n if n else None,
        avg_win=gross_win / len(wins) if wins else None,
        avg_loss=-gross_loss / len(losses) if losses else None,
        profit_factor=profit_factor,
        total_pnl=float(sum(values)),
        max_drawdown=max_drawdown(values),
        sharpe_daily=sharpe,
    )


@dataclass(frozen=True)
class Interval:
    low: float | None
    high: float | None
    method: str
    level: float

    def as_dict(self) -> dict:
        return {
            "low": _json_number(self.low),
            "high": _json_number(self.high),
            "method": self.method,
            "level": self.level,
        }


# Two-sided Student t quantiles (97.5%) for small samples; the normal value beyond.
_T975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def _t_quantile_975(dof: int) -> float:
    if dof <= 0:
        return math.nan
    for limit in sorted(_T975):
        if dof <= limit:
            return _T975[limit]
    return 1.960


def mean_confidence_interval(values: Sequence[float]) -> Interval:
    """95% Student-t interval for the mean (None bounds with fewer than two values)."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return Interval(None, None, "t", 0.95)
    mean = float(np.mean(data))
    half = _t_quantile_975(data.size - 1) * float(np.std(data, ddof=1)) / math.sqrt(data.size)
    return Interval(mean - half, mean + half, "t", 0.95)


def bootstrap_confidence_interval(
    values: Sequence[float], *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval for the mean; seeded so reports are reproducible."""
    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return Interval(None, None, "bootstrap", level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, data.size, size=(resamples, data.size))
    means = data[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(low), float(high), "bootstrap", level)
