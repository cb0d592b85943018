"""Where streamed seconds go: a batch buffer of ticks (COPY), the bar builder, and the
bar-close path shared with the replay feed (store, then publish). The bars one write closes
go out together (`publish_bars_closed`: one pipeline task per shard, not per bar).

The sink is driven from the asyncio loop (`add`, `tick`, `flush`); database work runs on one
worker thread (so writes, heals and announcements keep their order) and REST on another, so the
event loop never blocks. A failed flush keeps its data and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from channels.layers import get_channel_layer
from django.db import close_old_connections, connections

from autotrader_site.live_events import group_send
from marketdata.bar_builder import BuilderResult, MinuteBarBuilder, SecondAgg
from marketdata.clients.symbols import cluster_of
from marketdata.events import publish_bars_closed
from marketdata.gaps import (
    GapTracker,
    RestFetch,
    provisional_stored,
    rest_fetch_default,
    rest_minutes,
    runs_of_minutes,
)
from marketdata.services import bars_heal, bars_upsert, ticks_insert
from marketdata.types import BarData

log = logging.getLogger(__name__)

MAX_BUFFERED_TICKS = 200_000
REPAIR_GRACE_SEC = 1.0  # of the stop budget (SHUTDOWN_DEADLINE_SEC) given to REST repairs


def tick_group(symbol: str) -> str:
    return f"ticks.{symbol.upper()}"


@dataclass
class SinkStats:
    ticks_written: int = 0
    bars_closed: int = 0
    bars_corrected: int = 0
    provisional_closed: int = 0
    bars_healed: int = 0
    heal_missing: int = 0  # provisional minutes the provider still lacked after every attempt
    late_dropped: int = 0
    flush_failures: int = 0
    gaps_filled: int = 0
    published: list[BarData] = field(default_factory=list)


class StreamSink:
    """Ticks, minute bars and their repair.

    A closed bar is written and announced at once (no flush timer in between). A provisional
    bar (its minute missed seconds) is announced like any other — the decision does not wait —
    then replaced by the provider's REST minute bar `heal_delay_sec` later (retried
    `heal_attempts` times while the provider lacks it). Once healed, later stream corrections of
    that minute are ignored: REST is the truth and the minute keeps one row.
    """

    def __init__(
        self,
        *,
        batch: int = 100,
        grace_sec: float = 2.0,
        backfill_gaps: bool = True,
        rest_fetch: RestFetch = rest_fetch_default,
        on_bar: Callable[[BarData], None] | None = None,
        on_bars: Callable[[list[BarData]], None] | None = None,
        publish_ticks: bool = True,
        keep_published: bool = False,
        heal_delay_sec: float = 5.0,
        heal_attempts: int = 3,
        feed_of: Callable[[str], str] = cluster_of,
    ) -> None:
        self.batch = batch
        self.builder = MinuteBarBuilder(
            grace_sec=grace_sec, feed_of=feed_of, interrupted_at_start=True
        )
        self.gaps = GapTracker()
        self.backfill_gaps = backfill_gaps
        self.rest_fetch = rest_fetch
        # per bar when the caller asks for it (tests, the paper session), else one call per write
        self.on_bar = on_bar
        self.on_bars = on_bars or (publish_bars_closed if on_bar is None else None)
        self.publish_ticks = publish_ticks
        self.keep_published = keep_published
        self.heal_delay_sec = heal_delay_sec
        self.heal_attempts = heal_attempts
        self.ticks: list[tuple] = []
        self.bars_closed: list[BarData] = []
        self.bars_corrected: list[BarData] = []
        self.heal_wanted: list[tuple[str, datetime]] = []
        self.healed: set[tuple[str, datetime]] = set()  # touched on the db thread only
        self.stats = SinkStats()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-db")
        self._rest = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-rest")
        self._flush_lock = asyncio.Lock()
        self._flushing: asyncio.Future | None = None
        self._repairs: set[asyncio.Task] = set()
        self._closing = False
        self._in_flight = 0  # ticks and bars handed to a write that has not returned

    @property
    def pending(self) -> int:
        """Ticks and bars not written yet (those of a write still running included)."""
        buffered = len(self.ticks) + len(self.bars_closed) + len(self.bars_corrected)
        return buffered + self._in_flight

    async def add(self, aggs: list[SecondAgg]) -> None:
        for agg in aggs:
            self.ticks.append(agg.tick_row())
            self._take(self.builder.add(agg))
        if self.bars_closed or len(self.ticks) >= self.batch:
            self._kick()

    def interrupted(self, feed: str) -> None:
        """A feed's connection dropped (see MinuteBarBuilder.interrupted)."""
        self.builder.interrupted(feed)

    async def tick(self) -> None:
        """Timer: close minutes of quiet feeds once their grace has passed."""
        self._take(self.builder.close_due())
        if self.bars_closed:
            self._kick()

    def _kick(self) -> None:
        # in the background: the socket keeps being read while PostgreSQL writes
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self.flush())

    def _take(self, result: BuilderResult) -> None:
        self.bars_closed.extend(result.closed)
        self.bars_corrected.extend(result.corrected)
        self.stats.late_dropped += result.late_dropped
        self.heal_wanted.extend(result.heal)

    async def close_open_minutes(self) -> None:
        """The feed went quiet (or is stopping): close what is open and flush."""
        self._take(self.builder.close_all())
        await self.flush()

    async def flush(self) -> None:
        """Write what is pending; closed bars that arrive meanwhile go out in the same call."""
        async with self._flush_lock:
            while self.pending or self.heal_wanted:
                ticks, closed, corrected = self.ticks, self.bars_closed, self.bars_corrected
                self.ticks, self.bars_closed, self.bars_corrected = [], [], []
                loop = asyncio.get_running_loop()
                self._in_flight = len(ticks) + len(closed) + len(corrected)
                try:
                    await loop.run_in_executor(self._db, self._write, ticks, closed, corrected)
                except Exception:
                    self.stats.flush_failures += 1
                    log.exception("stream flush failed; keeping %d ticks for retry", len(ticks))
                    self.ticks = (ticks + self.ticks)[-MAX_BUFFERED_TICKS:]
                    self.bars_closed = closed + self.bars_closed
                    self.bars_corrected = corrected + self.bars_corrected
                    return
                finally:
                    self._in_flight = 0
                self._after_write(closed)
                if not self.bars_closed:
                    return

    def _after_write(self, closed: list[BarData]) -> None:
        """Queue the REST repairs the written bars call for: skipped minutes (gaps),
        provisional minutes, minutes whose late seconds could not be placed."""
        wanted, self.heal_wanted = self.heal_wanted, []
        if not self.backfill_gaps:
            return
        by_symbol: dict[str, list[datetime]] = {}
        for symbol, ts in wanted:
            by_symbol.setdefault(symbol, []).append(ts)
        for bar in closed:
            gap = self.gaps.on_bar(bar)
            if gap:
                self._repair(bar.symbol, gap, delay=0.0, gap=True)
            if bar.provisional:
                by_symbol.setdefault(bar.symbol, []).append(bar.ts)
        for symbol, minutes in by_symbol.items():
            self._repair(symbol, minutes, delay=self.heal_delay_sec)

    def _repair(
        self, symbol: str, minutes: list[datetime], *, delay: float, gap: bool = False
    ) -> None:
        if self._closing:
            return
        for run in runs_of_minutes(minutes):
            task = asyncio.ensure_future(self._repair_run(symbol, run, delay, gap))
            self._repairs.add(task)
            task.add_done_callback(self._repairs.discard)

    async def _repair_run(
        self, symbol: str, minutes: list[datetime], delay: float, gap: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        wanted = list(minutes)
        for attempt in range(max(1, self.heal_attempts)):
            wait = delay if attempt == 0 else max(delay, 1.0) * 2**attempt
            if wait:
                await asyncio.sleep(wait)
            bars = await loop.run_in_executor(
                self._rest,
                functools.partial(
                    rest_minutes, symbol=symbol, minutes=wanted, fetch=self.rest_fetch
                ),
            )
            if bars:
                try:
                    await loop.run_in_executor(self._db, self._heal_write, bars, gap)
                except Exception:  # the database is away: the next attempt writes them
                    log.exception("storing %d REST bars of %s failed", len(bars), symbol)
                    bars = []
            got = {b.ts for b in bars}
            wanted = [m for m in wanted if m not in got]
            if not wanted:
                return
        self.stats.heal_missing += len(wanted)
        log.warning(
            "REST lacks %d minutes of %s (%s..); left provisional", len(wanted), symbol, wanted[0]
        )

    def heal_stored(self, *, before: datetime) -> None:
        """Heal, in the background, what an earlier run stored provisional and did not get
        to repair (a database that hangs must not keep the stream from starting)."""
        if not self.backfill_gaps:
            return
        task = asyncio.ensure_future(self._heal_stored(before))
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _heal_stored(self, before: datetime) -> None:
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(
                self._db, functools.partial(provisional_stored, before=before)
            )
        except Exception:
            log.exception("could not read the provisional bars left by an earlier run")
            return
        for symbol, minutes in stored.items():
            self._repair(symbol, minutes, delay=0.0)

    def _heal_write(self, bars: list[BarData], gap: bool) -> None:
        close_old_connections()
        bars_heal(bars=bars)
        self.healed.update((b.symbol, b.ts) for b in bars)
        if gap:
            self.stats.gaps_filled += len(bars)
        else:
            self.stats.bars_healed += len(bars)
        if len(self.healed) > 50_000:  # keep the recent past only
            newest = max(ts for _, ts in self.healed)
            self.healed = {k for k in self.healed if newest - k[1] < timedelta(hours=6)}

    def _write(self, ticks: list[tuple], closed: list[BarData], corrected: list[BarData]) -> None:
        close_old_connections()
        # a minute healed from REST keeps the provider's bar: the stream's news of it is old
        closed = [b for b in closed if (b.symbol, b.ts) not in self.healed]
        corrected = [b for b in corrected if (b.symbol, b.ts) not in self.healed]
        if ticks:
            ticks_insert(ticks=ticks)
            self.stats.ticks_written += len(ticks)
        if closed or corrected:
            bars_upsert(bars=closed + corrected)
        self.stats.bars_corrected += len(corrected)
        for bar in closed:  # announce only after the bar is stored
            self.stats.bars_closed += 1
            self.stats.provisional_closed += bar.provisional
            if self.keep_published:
                self.stats.published.append(bar)
            if self.on_bar is not None:
                try:
                    self.on_bar(bar)
                except Exception:
                    log.exception("bar-close handler failed for %s %s", bar.symbol, bar.ts)
        if self.on_bars is not None and closed:
            try:
                self.on_bars(closed)
            except Exception:
                log.exception("bar-close handler failed for %d bars", len(closed))
        if self.publish_ticks and ticks:
            self._publish_ticks(ticks)

    def _publish_ticks(self, ticks: list[tuple]) -> None:
        """The newest second per symbol to `ticks.<SYMBOL>` (dashboard); best effort. Through
        the process's kept loop (`live_events.group_send`): `async_to_sync` from this thread
        made a fresh loop and Redis connection per send, 1.5 s of CPU for one second of a
        500-symbol feed (0.13 s this way), and the flush carrying the minute's closed bars
        waited behind it."""
        if get_channel_layer() is None:
            return
        newest: dict[str, tuple] = {}
        for row in ticks:
            if row[0] not in newest or row[1] > newest[row[0]][1]:
                newest[row[0]] = row
        for symbol, row in newest.items():
            try:
                group_send(
                    tick_group(symbol),
                    {
                        "type": "tick.update",
                        "tick": {
                            "symbol": symbol,
                            "ts": row[1].isoformat(),
                            "open": row[2],
                            "high": row[3],
                            "low": row[4],
                            "close": row[5],
                            "volume": row[6],
                        },
                    },
                )
            except Exception:
                log.exception("tick publish failed for %s", symbol)

    async def aclose(self) -> None:
        """Stop repairing (what is left stays provisional and is healed on the next start),
        write what is pending, release the threads' connections."""
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self.close_open_minutes()
        if self._repairs:  # a repair already fetching may finish; one still waiting may not
            await asyncio.wait(set(self._repairs), timeout=REPAIR_GRACE_SEC)
        self._closing = True
        for task in list(self._repairs):
            task.cancel()
        await asyncio.gather(*self._repairs, return_exceptions=True)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):  # release the db thread's connection
            await asyncio.wait_for(loop.run_in_executor(self._db, connections.close_all), 1.0)
        for pool in (self._rest, self._db):
            pool.shutdown(wait=False, cancel_futures=True)
