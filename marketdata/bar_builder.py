"""Per-second aggregates → 1-minute bars, the same bars whatever order the seconds arrive in.

Seconds are kept keyed by (symbol, second), so a duplicate replaces itself and an out-of-order
second lands in its place; a minute is built from its seconds sorted by time. A minute closes
as soon as its feed shows it is over (see MinuteBarBuilder), so the decision never waits for
stragglers: a second that arrives after its minute closed rebuilds that minute (kept for
`retain_minutes`) and is returned as a correction of the stored bar.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
    # minutes whose seconds came too late to rebuild them here: the REST minute bar is the truth
    heal: list[tuple[str, datetime]] = field(default_factory=list)

    def extend(self, other: BuilderResult) -> None:
        self.closed.extend(other.closed)
        self.corrected.extend(other.corrected)
        self.late_dropped += other.late_dropped
        self.heal.extend(other.heal)


@dataclass
class _Feed:
    """One feed's event-time clock: the newest second seen and when it arrived."""

    watermark: int | None = None
    seen_at: float = 0.0
    interrupted: bool = False  # nothing seen since a (re)connect: the next minute is partial
    resume_minute: int | None = None  # the minute the feed came back in ...
    resumed: set[str] = field(default_factory=set)  # ... and the symbols seen in it since

    def now(self, wall: float) -> float:
        """The feed's estimated current second: the newest aggregate (which ends one second
        after its start) plus the time since it arrived."""
        assert self.watermark is not None
        return self.watermark + 1 + max(0.0, wall - self.seen_at)


def _one_feed(symbol: str) -> str:
    return ""


class MinuteBarBuilder:
    """Seconds → minute bars with a per-feed event-time clock (a lagging feed never closes or
    drops another feed's minutes).

    A minute closes when its feed shows it is over: the symbol's second-59 aggregate (it covers
    the minute up to its end: that symbol's minute is complete, per symbol), the feed's first
    second of a later minute, or — a quiet feed — `grace_sec` after the minute's end by the
    feed's clock (`close_due`). A
    second arriving after its minute closed rebuilds it (`corrected`, kept `retain_minutes`);
    later than that the minute is named in `heal` (REST holds the truth). Minutes that may miss
    seconds — the first after a (re)connect, one open when the connection dropped, one first
    seen after it was over, one closed before it ended — are built `provisional`.
    """

    def __init__(
        self,
        *,
        grace_sec: float = 2.0,
        retain_minutes: int = 10,
        source: str = "stream",
        feed_of: Callable[[str], str] = _one_feed,
        interrupted_at_start: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace_sec = grace_sec
        self.retain_minutes = retain_minutes
        self.source = source
        self.feed_of = feed_of
        self.interrupted_at_start = interrupted_at_start
        self.clock = clock
        self.feeds: dict[str, _Feed] = {}
        self.open: dict[tuple[str, int], dict[int, SecondAgg]] = {}
        self.closed: dict[tuple[str, int], dict[int, SecondAgg]] = {}
        self.provisional: set[tuple[str, int]] = set()

    def _feed(self, symbol: str) -> _Feed:
        name = self.feed_of(symbol)
        if name not in self.feeds:
            self.feeds[name] = _Feed(interrupted=self.interrupted_at_start)
        return self.feeds[name]

    def _bar(self, key: tuple[str, int], seconds: dict[int, SecondAgg]) -> BarData:
        bar = build_bar(key[0], key[1], seconds, self.source)
        return replace(bar, provisional=True) if key in self.provisional else bar

    def add(self, agg: SecondAgg) -> BuilderResult:
        """Take one second; returns the bars this closed, any corrected (late) bars and the
        minutes to heal from REST."""
        result = BuilderResult()
        feed = self._feed(agg.symbol)
        minute = agg.start - agg.start % MINUTE
        key = (agg.symbol, minute)
        if feed.interrupted:
            feed.interrupted = False
            feed.resume_minute, feed.resumed = minute, set()
        if feed.resume_minute == minute and agg.symbol not in feed.resumed:
            feed.resumed.add(agg.symbol)
            self.provisional.add(key)  # its seconds before the (re)connect were not seen
        if key in self.closed:
            seconds = self.closed[key]
            before = self._bar(key, seconds)
            seconds[agg.start] = agg
            after = self._bar(key, seconds)
            if after != before:
                result.corrected.append(after)
            return result
        over = feed.watermark is not None and minute + MINUTE <= feed.watermark
        if over and key not in self.open:
            if minute < self._oldest_kept(feed):
                log.warning("late second %s %s beyond retention; healing", agg.symbol, agg.ts)
                result.late_dropped += 1
                result.heal.append((agg.symbol, datetime.fromtimestamp(minute, tz=UTC)))
                return result
            self.provisional.add(key)  # first seen after it was over: seconds are missing
        self.open.setdefault(key, {})[agg.start] = agg
        new_minute = feed.watermark is None or agg.start // MINUTE > feed.watermark // MINUTE
        if feed.watermark is None or agg.start > feed.watermark:
            feed.watermark = agg.start
            feed.seen_at = self.clock()
        if new_minute or over:
            result.extend(self._close(self.feed_of(agg.symbol), self._over_by_watermark(feed)))
        if agg.start % MINUTE == MINUTE - 1 and key in self.open:
            # the last second of the minute arrived: this symbol's minute is over (a straggler
            # of an earlier second is a correction), the decision need not wait for the next
            seconds = self.open.pop(key)
            result.closed.append(self._bar(key, seconds))
            self.closed[key] = seconds
        return result

    @staticmethod
    def _over_by_watermark(feed: _Feed):
        limit = feed.watermark
        return lambda minute: minute + MINUTE <= limit

    def interrupted(self, feed_name: str) -> None:
        """The feed's connection dropped: its open minutes miss what is sent while away, and
        so does the minute of its first second after the reconnect."""
        feed = self.feeds.setdefault(feed_name, _Feed())
        feed.interrupted = True
        for key in self.open:
            if self.feed_of(key[0]) == feed_name:
                self.provisional.add(key)

    def close_due(self) -> BuilderResult:
        """Close the minutes whose end plus `grace_sec` has passed by their feed's clock (a
        quiet feed: no later second came to close them)."""
        result = BuilderResult()
        wall = self.clock()
        for name, feed in self.feeds.items():
            if feed.watermark is None:
                continue
            limit = feed.now(wall) - self.grace_sec
            result.extend(self._close(name, lambda minute, limit=limit: minute + MINUTE <= limit))
        result.closed.sort(key=lambda b: (b.ts, b.symbol))
        return result

    def close_all(self) -> BuilderResult:
        """Close every open minute (feed idle or stopping); one not over yet is provisional."""
        wall = self.clock()
        for key in self.open:
            feed = self._feed(key[0])
            if feed.watermark is None or key[1] + MINUTE > feed.now(wall):
                self.provisional.add(key)
        result = BuilderResult()
        for name in {self.feed_of(k[0]) for k in self.open}:
            result.extend(self._close(name, lambda minute: True))
        result.closed.sort(key=lambda b: (b.ts, b.symbol))
        return result

    def _close(self, feed_name: str, due) -> BuilderResult:
        result = BuilderResult()
        keys = sorted(k for k in self.open if self.feed_of(k[0]) == feed_name and due(k[1]))
        for key in keys:
            seconds = self.open.pop(key)
            result.closed.append(self._bar(key, seconds))
            self.closed[key] = seconds
        result.closed.sort(key=lambda b: (b.ts, b.symbol))
        self._forget_old(feed_name)
        return result

    def _oldest_kept(self, feed: _Feed) -> int:
        assert feed.watermark is not None
        return feed.watermark - feed.watermark % MINUTE - self.retain_minutes * MINUTE

    def _forget_old(self, feed_name: str) -> None:
        feed = self.feeds.get(feed_name)
        if feed is None or feed.watermark is None:
            return
        oldest = self._oldest_kept(feed)
        for key in [k for k in self.closed if k[1] < oldest and self.feed_of(k[0]) == feed_name]:
            del self.closed[key]
            self.provisional.discard(key)


def missing_minutes(previous: datetime, current: datetime) -> list[datetime]:
    """Minute starts strictly between two consecutive closed bars of one symbol."""
    out = []
    at = previous + timedelta(minutes=1)
    while at < current:
        out.append(at)
        at += timedelta(minutes=1)
    return out
