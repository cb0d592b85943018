"""Per-second aggregates → 1-minute bars, the same bars whatever order the seconds arrive in.

Seconds are kept keyed by (symbol, second), so a duplicate replaces itself and an out-of-order
second lands in its place; a minute is built from its seconds sorted by time. A minute closes
once the event-time watermark (the newest second seen) has passed its end plus `grace_sec`,
or when the caller closes everything (idle feed, shutdown). A second that arrives after its
minute closed rebuilds that minute (kept for `retain_minutes`) and is returned as a correction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from marketdata.types import BarData

log = logging.getLogger(__name__)

MINUTE = 60


@dataclass(frozen=True, slots=True)
class SecondAgg:
    """One per-second aggregate (Polygon `A` event). `start` is epoch seconds."""

    symbol: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    vwap: float | None = None
    avg_trade_size: float | None = None

    @property
    def ts(self) -> datetime:
        return datetime.fromtimestamp(self.start, tz=UTC)

    def tick_row(self, source: str = "stream") -> tuple:
        return (
            self.symbol,
            self.ts,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.vwap,
            self.avg_trade_size,
            source,
        )


def build_bar(symbol: str, minute: int, seconds: dict[int, SecondAgg], source: str) -> BarData:
    """The 1-minute bar of `seconds` (non-empty): o of the first, c of the last, extremes,
    summed volume, volume-weighted vwap (None without volume)."""
    ordered = [seconds[k] for k in sorted(seconds)]
    volume = sum(s.volume for s in ordered)
    vwap = None
    if volume > 0:
        vwap = sum((s.vwap if s.vwap is not None else s.close) * s.volume for s in ordered) / volume
    return BarData(
        symbol,
        datetime.fromtimestamp(minute, tz=UTC),
        ordered[0].open,
        max(s.high for s in ordered),
        min(s.low for s in ordered),
        ordered[-1].close,
        float(volume),
        vwap=vwap,
        source=source,
    )


@dataclass
class BuilderResult:
    closed: list[BarData] = field(default_factory=list)
    corrected: list[BarData] = field(default_factory=list)
    late_dropped: int = 0

    def extend(self, other: BuilderResult) -> None:
        self.closed.extend(other.closed)
        self.corrected.extend(other.corrected)
        self.late_dropped += other.late_dropped


class MinuteBarBuilder:
    def __init__(
        self, *, grace_sec: float = 2.0, retain_minutes: int = 10, source: str = "stream"
    ) -> None:
        self.grace_sec = grace_sec
        self.retain_minutes = retain_minutes
        self.source = source
        self.open: dict[tuple[str, int], dict[int, SecondAgg]] = {}
        self.closed: dict[tuple[str, int], dict[int, SecondAgg]] = {}
        self.watermark: int | None = None  # newest second seen (epoch s)

    def add(self, agg: SecondAgg) -> BuilderResult:
        """Take one second; returns the bars this closed and any corrected (late) bars."""
        result = BuilderResult()
        minute = agg.start - agg.start % MINUTE
        key = (agg.symbol, minute)
        if key in self.closed:
            seconds = self.closed[key]
            before = build_bar(agg.symbol, minute, seconds, self.source)
            seconds[agg.start] = agg
            after = build_bar(agg.symbol, minute, seconds, self.source)
            if after != before:
                result.corrected.append(after)
            return result
        if self.watermark is not None and minute < self._oldest_kept() and key not in self.open:
            log.warning("late second %s %s beyond retention; dropped", agg.symbol, agg.ts)
            result.late_dropped += 1
            return result
        self.open.setdefault(key, {})[agg.start] = agg
        if self.watermark is None or agg.start > self.watermark:
            self.watermark = agg.start
            result.extend(self.close_due())
        return result

    def close_due(self) -> BuilderResult:
        """Close the minutes the watermark has passed by more than the grace period."""
        if self.watermark is None:
            return BuilderResult()
        limit = self.watermark - self.grace_sec
        return self._close(lambda minute: minute + MINUTE <= limit)

    def close_all(self) -> BuilderResult:
        """Close every open minute (feed idle or stopping)."""
        return self._close(lambda minute: True)

    def _close(self, due) -> BuilderResult:
        result = BuilderResult()
        for key in sorted(k for k in self.open if due(k[1])):
            seconds = self.open.pop(key)
            result.closed.append(build_bar(key[0], key[1], seconds, self.source))
            self.closed[key] = seconds
        result.closed.sort(key=lambda b: (b.ts, b.symbol))
        self._forget_old()
        return result

    def _oldest_kept(self) -> int:
        assert self.watermark is not None
        return self.watermark - self.watermark % MINUTE - self.retain_minutes * MINUTE

    def _forget_old(self) -> None:
        if self.watermark is None:
            return
        oldest = self._oldest_kept()
        for key in [k for k in self.closed if k[1] < oldest]:
            del self.closed[key]


def missing_minutes(previous: datetime, current: datetime) -> list[datetime]:
    """Minute starts strictly between two consecutive closed bars of one symbol."""
    out = []
    at = previous + timedelta(minutes=1)
    while at < current:
        out.append(at)
        at += timedelta(minutes=1)
    return out
