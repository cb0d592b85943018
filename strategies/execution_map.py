"""Signals fire on the source symbol (e.g. SPX); orders trade the execution symbol (SPY).

Translation method: the ratio of the two closes at the same minute. With r = exec_close /
src_close, every level L (entry, stop, targets) becomes r*L and the ATR becomes r*ATR. The entry is
therefore the execution symbol's own close, and the stop/target distances keep the same size
relative to price, which is what a proxy ETF tracks (SPY ~ SPX/10, QQQ ~ NDX/41). When the
execution bar of that minute is not stored, the latest execution bar up to MAX_STALENESS earlier
is used; older than that, translation fails and the signal is not traded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from marketdata.selectors import bars_as_data

MAX_STALENESS = timedelta(minutes=5)
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class ExecutionLevels:
    execution_symbol: str
    ratio: float
    exec_bar_ts: datetime
    entry: Decimal
    stop: Decimal
    target_one: Decimal
    target_two: Decimal
    exec_atr: float


def price(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def levels_translate(
    *,
    ratio: float,
    entry: float,
    stop: float,
    target_one: float,
    target_two: float,
    atr: float,
) -> tuple[Decimal, Decimal, Decimal, Decimal, float]:
    """Pure translation by price ratio, rounded to cents."""
    return (
        price(entry * ratio),
        price(stop * ratio),
        price(target_one * ratio),
        price(target_two * ratio),
        atr * ratio,
    )


def execution_close(symbol: str, bar_ts: datetime) -> tuple[datetime, float] | None:
    """The execution symbol's close at `bar_ts`, or the latest within MAX_STALENESS before it."""
    bars = bars_as_data(symbol=symbol, start=bar_ts - MAX_STALENESS, end=bar_ts)
    if not bars:
        return None
    return bars[-1].ts, bars[-1].close


def execution_levels(
    *,
    symbol: str,
    execution_symbol: str,
    bar_ts: datetime,
    src_close: float,
    entry: float,
    stop: float,
    target_one: float,
    target_two: float,
    atr: float,
) -> ExecutionLevels | None:
    """Levels on the execution symbol's prices; None when its price at that minute is unknown."""
    if execution_symbol == symbol:
        ratio, exec_ts = 1.0, bar_ts
    else:
        found = execution_close(execution_symbol, bar_ts)
        if found is None or not src_close > 0:
            return None
        exec_ts, exec_close = found
        ratio = exec_close / src_close
    e, s, t1, t2, exec_atr = levels_translate(
        ratio=ratio, entry=entry, stop=stop, target_one=target_one, target_two=target_two, atr=atr
    )
    return ExecutionLevels(execution_symbol, ratio, exec_ts, e, s, t1, t2, exec_atr)
