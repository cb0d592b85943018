"""Reads of stored market data."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Max, QuerySet

from marketdata.models import Bar
from marketdata.types import BarData


def bar_list(
    *, symbol: str, start: datetime | None = None, end: datetime | None = None
) -> QuerySet:
    """Bars of one symbol in time order; one row per minute even when sources overlap is the
    caller's concern (see `bars_as_data`)."""
    qs = Bar.objects.filter(symbol=symbol)
    if start is not None:
        qs = qs.filter(ts__gte=start)
    if end is not None:
        qs = qs.filter(ts__lte=end)
    return qs.order_by("ts")


def bars_as_data(
    *,
    symbol: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[BarData]:
    """Bars as value objects, one per minute: a final bar before a provisional one, then the
    first source stored."""
    qs = bar_list(symbol=symbol, start=start, end=end)
    if limit is not None:
        newest = qs.order_by("-ts", "provisional", "id").values("pk")[:limit]
        qs = Bar.objects.filter(pk__in=newest)
    qs = qs.order_by("ts", "provisional", "id")
    seen: set[datetime] = set()
    out: list[BarData] = []
    for row in qs.values_list(
        "ts", "open", "high", "low", "close", "volume", "vwap", "trades", "source", "provisional"
    ):
        if row[0] in seen:
            continue
        seen.add(row[0])
        out.append(BarData(symbol, *row))
    return out


def last_bar_time() -> datetime | None:
    return Bar.objects.aggregate(last=Max("ts"))["last"]
