"""Writes of market data."""

from __future__ import annotations

from collections.abc import Iterable

from marketdata.models import Bar
from marketdata.types import BarData


def bars_upsert(*, bars: Iterable[BarData]) -> int:
    """Store bars; a bar already stored for (symbol, ts, source) is updated, never doubled.
    Returns the number of rows written."""
    rows = [
        Bar(
            symbol=b.symbol,
            ts=b.ts,
            open=b.open,
            high=b.high,
            low=b.low,
            close=b.close,
            volume=b.volume,
            vwap=b.vwap,
            trades=b.trades,
            source=b.source,
        )
        for b in bars
    ]
    if not rows:
        return 0
    Bar.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["symbol", "ts", "source"],
        update_fields=["open", "high", "low", "close", "volume", "vwap", "trades"],
        batch_size=2000,
    )
    return len(rows)
