"""Gaps in the 1-minute stream during the regular session, and their REST back-fill.

A gap is one or more session minutes between two consecutive closed bars of a symbol (a
dropped connection, a slow consumer). They are fetched from REST — Polygon aggregates for
indices (and equities when USE_POLYGON_EQUITY=1), else Tradier timesales — and stored with
source=rest_backfill.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache

import pandas as pd
from django.conf import settings

from marketdata.bar_builder import missing_minutes
from marketdata.calendar import DateOutOfBounds, xnys
from marketdata.clients.symbols import is_index
from marketdata.models import BarSource
from marketdata.types import BarData

log = logging.getLogger(__name__)

RestFetch = Callable[[str, datetime, datetime], list[BarData]]


def _calendar():
    return xnys()


@lru_cache(maxsize=64)
def _session_bounds(day) -> tuple[datetime, datetime] | None:
    cal = _calendar()
    label = pd.Timestamp(day)
    try:
        if not cal.is_session(label):
            return None
        return (
            cal.session_open(label).to_pydatetime(),
            cal.session_close(label).to_pydatetime(),
        )
    except (ValueError, KeyError, DateOutOfBounds):
        return None


def is_session_minute(ts: datetime) -> bool:
    """True when the minute starting at `ts` is inside a regular XNYS session (holidays and
    early closes included)."""
    from zoneinfo import ZoneInfo

    bounds = _session_bounds(ts.astimezone(ZoneInfo("America/New_York")).date())
    return bounds is not None and bounds[0] <= ts < bounds[1]


class GapTracker:
    """Remembers the last closed bar per symbol and names the session minutes skipped."""

    def __init__(self) -> None:
        self.last: dict[str, datetime] = {}

    def on_bar(self, bar: BarData) -> list[datetime]:
        previous = self.last.get(bar.symbol)
        if previous is None or bar.ts > previous:
            self.last[bar.symbol] = bar.ts
        if previous is None or bar.ts <= previous:
            return []
        return [m for m in missing_minutes(previous, bar.ts) if is_session_minute(m)]


def rest_fetch_default(symbol: str, start: datetime, end: datetime) -> list[BarData]:
    """1-minute bars for [start, end] from the configured REST provider."""
    if (is_index(symbol) or settings.USE_POLYGON_EQUITY) and settings.POLYGON_API_KEY:
        from marketdata.clients.polygon_rest import PolygonREST

        client = PolygonREST.from_settings()
        try:
            return client.aggs(symbol, start=start, end=end, source=BarSource.REST_BACKFILL)
        finally:
            client.close()
    if settings.TRADIER_ACCESS_TOKEN and not is_index(symbol):
        from marketdata.clients.tradier_market import TradierMarketData

        md = TradierMarketData()
        try:
            return md.timesales(
                symbol, start=start, end=end, interval="1min", source=BarSource.REST_BACKFILL
            )
        finally:
            md.http.close()
    log.warning("no REST provider configured to back-fill %s %s..%s", symbol, start, end)
    return []


def rest_minutes(
    *, symbol: str, minutes: list[datetime], fetch: RestFetch = rest_fetch_default
) -> list[BarData]:
    """The provider's bars of `minutes` (source=rest_backfill); a minute it does not have yet
    is left out, a provider error gives none (a provider outage must not stop the stream)."""
    if not minutes:
        return []
    wanted = set(minutes)
    try:
        fetched = fetch(symbol, min(minutes), max(minutes) + timedelta(seconds=59))
    except Exception as exc:
        log.error("REST minutes %s %s..%s failed: %s", symbol, min(minutes), max(minutes), exc)
        return []
    return [
        BarData(
            symbol,
            b.ts,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.vwap,
            b.trades,
            BarSource.REST_BACKFILL,
        )
        for b in fetched
        if b.ts in wanted
    ]


def gap_backfill(
    *, symbol: str, minutes: list[datetime], fetch: RestFetch = rest_fetch_default
) -> list[BarData]:
    """Fetch the provider's bars of `minutes` and store each as the one row of its minute
    (a stream row of the same minute — partial, provisional — is replaced). Returns those
    stored."""
    from marketdata.services import bars_heal

    bars = rest_minutes(symbol=symbol, minutes=minutes, fetch=fetch)
    if bars:
        bars_heal(bars=bars)
    log.info("gap back-fill %s: %d of %d minutes from REST", symbol, len(bars), len(minutes))
    return bars


def provisional_stored(*, before: datetime, limit: int = 5000) -> dict[str, list[datetime]]:
    """Stream minutes stored provisional (a streamer stopped before healing them), by symbol."""
    from marketdata.models import Bar

    rows = (
        Bar.objects.filter(provisional=True, source=BarSource.STREAM, ts__lt=before)
        .order_by("symbol", "ts")
        .values_list("symbol", "ts")[:limit]
    )
    out: dict[str, list[datetime]] = {}
    for symbol, ts in rows:
        out.setdefault(symbol, []).append(ts)
    return out


def runs_of_minutes(minutes: list[datetime], *, longest: int = 240) -> list[list[datetime]]:
    """Sorted minutes cut where they are more than an hour apart or a run gets long, so one
    REST request never spans days."""
    runs: list[list[datetime]] = []
    for ts in sorted(set(minutes)):
        if runs and ts - runs[-1][-1] <= timedelta(hours=1) and len(runs[-1]) < longest:
            runs[-1].append(ts)
        else:
            runs.append([ts])
    return runs
