"""Writes of market data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date

from django.db import transaction

from autotrader_site.metrics import BARS_WRITTEN_TOTAL
from marketdata.ingest import BARS, TICKS, bar_rows, copy_upsert, is_postgres
from marketdata.models import Bar, BarSource, Tick
from marketdata.types import BarData


def bars_upsert(*, bars: Iterable[BarData]) -> int:
    """Store bars; a bar already stored for (symbol, ts, source) is updated, never doubled.
    Returns the number of rows written (inserted or changed; an identical re-run writes 0 on
    PostgreSQL)."""
    bars = list(bars)
    if not bars:
        return 0
    for bar in bars:
        if bar.ts.tzinfo is None:
            raise ValueError(f"{bar.symbol} bar at {bar.ts!r} is naive: bars are stored in UTC")
    if is_postgres():
        written = copy_upsert(BARS, bar_rows(bars))
    else:
        written = _bars_upsert_orm(bars)
    sources = {b.source for b in bars}
    if len(sources) == 1:
        BARS_WRITTEN_TOTAL.labels(source=sources.pop()).inc(written)
    elif written:
        for source in sources:
            BARS_WRITTEN_TOTAL.labels(source=source).inc(sum(b.source == source for b in bars))
    return written


@transaction.atomic
def bars_heal(*, bars: Iterable[BarData]) -> int:
    """Store the provider's bars as the one row of their minute: the stream's (provisional or
    partial) row of the same minute is deleted in the same transaction, so a reader sees the
    old bar or the healed one, never both. Returns the rows written."""
    bars = [replace(b, provisional=False) for b in bars]
    by_symbol: dict[str, list] = {}
    for bar in bars:
        by_symbol.setdefault(bar.symbol, []).append(bar.ts)
    for symbol, times in by_symbol.items():
        Bar.objects.filter(symbol=symbol, ts__in=times, source=BarSource.STREAM).delete()
    return bars_upsert(bars=bars)


@transaction.atomic
def _bars_upsert_orm(bars: list[BarData]) -> int:
    latest = {(b.symbol, b.ts, b.source): b for b in bars}  # the last copy of a key wins
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
            provisional=b.provisional,
        )
        for b in latest.values()
    ]
    Bar.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["symbol", "ts", "source"],
        update_fields=["open", "high", "low", "close", "volume", "vwap", "trades", "provisional"],
        batch_size=2000,
    )
    return len(rows)


def ticks_insert(*, ticks: Iterable[tuple]) -> int:
    """Store per-second aggregates, given as tuples (symbol, ts, open, high, low, close,
    volume, vwap, avg_trade_size, source). A repeated (symbol, ts, source) replaces the
    earlier one. Returns rows inserted or changed."""
    rows = list(ticks)
    if not rows:
        return 0
    if is_postgres():
        return copy_upsert(TICKS, rows)
    return _ticks_upsert_orm(rows)


@transaction.atomic
def _ticks_upsert_orm(rows: list[tuple]) -> int:
    latest = {(r[0], r[1], r[9]): r for r in rows}
    objs = [
        Tick(
            symbol=r[0],
            ts=r[1],
            open=r[2],
            high=r[3],
            low=r[4],
            close=r[5],
            volume=r[6],
            vwap=r[7],
            avg_trade_size=r[8],
            source=r[9],
        )
        for r in latest.values()
    ]
    Tick.objects.bulk_create(
        objs,
        update_conflicts=True,
        unique_fields=["symbol", "ts", "source"],
        update_fields=["open", "high", "low", "close", "volume", "vwap", "avg_trade_size"],
        batch_size=2000,
    )
    return len(objs)


def flatfiles_backfill(
    *,
    start: date,
    end: date,
    symbols: list[str],
    datasets: list[str] | None = None,
    client=None,
    progress: bool = False,
) -> list:
    """Load Polygon flat files for [start, end] into bars_1m (one transaction per file);
    returns one IngestResult per dataset-day. Re-running writes nothing new."""
    from marketdata.flatfiles import backfill_day, datasets_for, days_between, s3_client

    datasets = datasets or datasets_for(symbols)
    client = client or s3_client()
    days = list(days_between(start, end))
    results = []
    bar = _progress_bar(total=len(days) * len(datasets), enabled=progress)
    for day in days:
        for dataset in datasets:
            bar.set_description(f"{dataset} {day}")
            results.append(backfill_day(day=day, dataset=dataset, symbols=symbols, client=client))
            bar.set_postfix(rows=sum(r.written for r in results))
            bar.update(1)
    bar.close()
    return results


def _progress_bar(*, total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", disable=not enabled, leave=False)
