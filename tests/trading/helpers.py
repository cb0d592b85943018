"""Builders for trading tests: signals as the strategy engine saves them, and bars."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from marketdata.types import BarData
from strategies.models import Signal


def make_signal(
    *,
    bar_ts: datetime,
    entry="100.00",
    stop="99.00",
    t1="101.00",
    t2="102.00",
    symbol="SPY",
    setup="EMA_CROSS",
    features=None,
) -> Signal:
    return Signal.objects.create(
        setup=setup,
        symbol=symbol,
        execution_symbol=symbol,
        bar_ts=bar_ts,
        entry_price=Decimal(entry),
        stop_price=Decimal(stop),
        target_one=None if t1 is None else Decimal(t1),
        target_two=None if t2 is None else Decimal(t2),
        features=features or {"exec_atr": 1.0},
        outcome="generated",
    )


def bar(ts: datetime, o, h, low, c, symbol="SPY") -> BarData:
    return BarData(symbol, ts, float(o), float(h), float(low), float(c), 1000.0, source="test")


def minutes(start: datetime, n: int) -> datetime:
    return start + timedelta(minutes=n)
