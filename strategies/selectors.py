"""Reads of the signal journal."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Max, QuerySet

from strategies.models import Book, FeatureSnapshot, Signal, SignalOutcome

TRADED_OUTCOMES = (SignalOutcome.DRY_RUN, SignalOutcome.SUBMITTED)


def signal_list(
    *,
    symbol: str | None = None,
    setup: str | None = None,
    outcome: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet:
    qs = Signal.objects.all()
    if symbol:
        qs = qs.filter(symbol=symbol.upper())
    if setup:
        qs = qs.filter(setup=setup.upper())
    if outcome:
        qs = qs.filter(outcome=outcome)
    if start is not None:
        qs = qs.filter(bar_ts__gte=start)
    if end is not None:
        qs = qs.filter(bar_ts__lte=end)
    return qs.order_by("-bar_ts", "-id")


def signal_last_fired(*, symbol: str, before: datetime, window_sec: int) -> dict[str, datetime]:
    """setup -> bar start of the latest stored signal of `symbol` in the cooldown window before
    `before` (any outcome: a blocked signal also starts the cooldown, so the journal is not
    flooded with one row per bar while a condition holds)."""
    if window_sec <= 0:
        return {}
    rows = (
        Signal.objects.filter(
            symbol=symbol,
            bar_ts__lt=before,
            bar_ts__gte=before - timedelta(seconds=window_sec),
        )
        .values("setup")
        .annotate(last=Max("bar_ts"))
    )
    return {r["setup"]: r["last"] for r in rows}


def signal_traded_count(*, start: datetime, end: datetime, book: str = Book.ACCOUNT) -> int:
    """Signals of `book` with bar start in [start, end) that became trades (dry_run or
    submitted): the paper book's never count against the account's limits."""
    return Signal.objects.filter(
        bar_ts__gte=start, bar_ts__lt=end, outcome__in=TRADED_OUTCOMES, book=book
    ).count()


def feature_snapshot_exists(*, symbol: str, bar_ts: datetime) -> bool:
    return FeatureSnapshot.objects.filter(symbol=symbol, bar_ts=bar_ts).exists()


def feature_snapshot_latest(*, symbol: str) -> FeatureSnapshot | None:
    return FeatureSnapshot.objects.filter(symbol=symbol).order_by("-bar_ts").first()


def claim_states(bars: list[tuple[str, datetime]]) -> dict[tuple[str, datetime], str]:
    """(symbol, bar_ts) -> claim state of those of `bars` claimed already, in one query (a
    batch of bars reads its claims once, before any of them is stepped)."""
    if not bars:
        return {}
    if connection.vendor != "postgresql":  # the embedded SQLite session: small batches
        wanted = {(s.upper(), ts) for s, ts in bars}
        rows = FeatureSnapshot.objects.filter(
            symbol__in={s for s, _ in wanted}, bar_ts__in={ts for _, ts in wanted}
        ).values_list("symbol", "bar_ts", "state")
        return {(s, ts): state for s, ts, state in rows if (s, ts) in wanted}
    sql = (
        f"SELECT f.symbol, f.bar_ts, f.state FROM {FeatureSnapshot._meta.db_table} f "
        "JOIN unnest(%s::varchar[], %s::timestamptz[]) AS b(symbol, bar_ts) "
        "ON f.symbol = b.symbol AND f.bar_ts = b.bar_ts"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [[s.upper() for s, _ in bars], [ts for _, ts in bars]])
        return {(symbol, bar_ts): state for symbol, bar_ts, state in cursor.fetchall()}
