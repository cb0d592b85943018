"""Reads of stored market data."""

from __future__ import annotations

from datetime import datetime

from django.db import connection
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
    return _one_per_minute(symbol, qs.values_list(*_BAR_FIELDS))


_BAR_FIELDS = ("ts", "open", "high", "low", "close", "volume", "vwap", "trades", "source",
               "provisional")  # fmt: skip


def _one_per_minute(symbol: str, rows) -> list[BarData]:
    """Rows in (ts, provisional, id) order as bars, the first row of each minute kept."""
    seen: set[datetime] = set()
    out: list[BarData] = []
    for row in rows:
        if row[0] in seen:
            continue
        seen.add(row[0])
        out.append(BarData(symbol, *row))
    return out


def bars_as_data_many(
    windows: dict[str, tuple[datetime, datetime]],
) -> dict[str, list[BarData]]:
    """`bars_as_data` of many symbols, each over its own window (start, end inclusive), in ONE
    query (a batch of bars catches its feature engines up with it): symbol -> its bars, one
    per minute."""
    if not windows:
        return {}
    if connection.vendor != "postgresql":  # the embedded SQLite session: a query per symbol
        return {s: bars_as_data(symbol=s, start=t0, end=t1) for s, (t0, t1) in windows.items()}
    columns = ", ".join(f"b.{name}" for name in _BAR_FIELDS)
    sql = (
        f"SELECT b.symbol, {columns} FROM {Bar._meta.db_table} b "
        "JOIN unnest(%s::varchar[], %s::timestamptz[], %s::timestamptz[]) AS w(symbol, t0, t1) "
        "ON b.symbol = w.symbol AND b.ts >= w.t0 AND b.ts <= w.t1 "
        "ORDER BY b.symbol, b.ts, b.provisional, b.id"
    )
    symbols = list(windows)
    rows: dict[str, list[tuple]] = {symbol: [] for symbol in symbols}
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [symbols, [windows[s][0] for s in symbols], [windows[s][1] for s in symbols]],
        )
        for symbol, *row in cursor.fetchall():
            rows[symbol].append(row)
    return {symbol: _one_per_minute(symbol, rows[symbol]) for symbol in symbols}


def last_bar_time() -> datetime | None:
    return Bar.objects.aggregate(last=Max("ts"))["last"]
