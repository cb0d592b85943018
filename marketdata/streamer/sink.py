"""Where streamed seconds go: a batch buffer of ticks (COPY), the bar builder, and the
bar-close path shared with the replay feed (store, then `publish_bar_closed`).

The sink is driven from the asyncio loop (`add`, `flush`); database work runs on one worker
thread so the event loop never blocks on PostgreSQL. A failed flush keeps its data and retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import close_old_connections, connections

from marketdata.bar_builder import BuilderResult, MinuteBarBuilder, SecondAgg
from marketdata.events import publish_bar_closed
from marketdata.gaps import GapTracker, RestFetch, gap_backfill, rest_fetch_default
from marketdata.services import bars_upsert, ticks_insert
from marketdata.types import BarData

log = logging.getLogger(__name__)

MAX_BUFFERED_TICKS = 200_000


def tick_group(symbol: str) -> str:
    return f"ticks.{symbol.upper()}"


@dataclass
class SinkStats:
    ticks_written: int = 0
    bars_closed: int = 0
    bars_corrected: int = 0
    late_dropped: int = 0
    flush_failures: int = 0
    gaps_filled: int = 0
    published: list[BarData] = field(default_factory=list)


class StreamSink:
    def __init__(
        self,
        *,
        batch: int = 100,
        grace_sec: float = 2.0,
        backfill_gaps: bool = True,
        rest_fetch: RestFetch = rest_fetch_default,
        on_bar: Callable[[BarData], None] = publish_bar_closed,
        publish_ticks: bool = True,
        keep_published: bool = False,
    ) -> None:
        self.batch = batch
        self.builder = MinuteBarBuilder(grace_sec=grace_sec)
        self.gaps = GapTracker()
        self.backfill_gaps = backfill_gaps
        self.rest_fetch = rest_fetch
        self.on_bar = on_bar
        self.publish_ticks = publish_ticks
        self.keep_published = keep_published
        self.ticks: list[tuple] = []
        self.bars_closed: list[BarData] = []
        self.bars_corrected: list[BarData] = []
        self.stats = SinkStats()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-db")
        self._rest = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-rest")
        self._flush_lock = asyncio.Lock()
        self._flushing: asyncio.Future | None = None

    async def add(self, aggs: list[SecondAgg]) -> None:
        for agg in aggs:
            self.ticks.append(agg.tick_row())
            self._take(self.builder.add(agg))
        if len(self.ticks) >= self.batch and (self._flushing is None or self._flushing.done()):
            # in the background: the socket keeps being read while PostgreSQL writes
            self._flushing = asyncio.ensure_future(self.flush())

    def _take(self, result: BuilderResult) -> None:
        self.bars_closed.extend(result.closed)
        self.bars_corrected.extend(result.corrected)
        self.stats.late_dropped += result.late_dropped

    async def close_open_minutes(self) -> None:
        """The feed went quiet (or is stopping): close what is open and flush."""
        self._take(self.builder.close_all())
        await self.flush()

    async def flush(self) -> None:
        async with self._flush_lock:
            if not (self.ticks or self.bars_closed or self.bars_corrected):
                return
            ticks, closed, corrected = self.ticks, self.bars_closed, self.bars_corrected
            self.ticks, self.bars_closed, self.bars_corrected = [], [], []
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._db, self._write, ticks, closed, corrected)
            except Exception:
                self.stats.flush_failures += 1
                log.exception("stream flush failed; keeping %d ticks for retry", len(ticks))
                self.ticks = (ticks + self.ticks)[-MAX_BUFFERED_TICKS:]
                self.bars_closed = closed + self.bars_closed
                self.bars_corrected = corrected + self.bars_corrected
                return
            if self.backfill_gaps:
                for bar in closed:
                    minutes = self.gaps.on_bar(bar)
                    if minutes:
                        loop.run_in_executor(self._rest, self._backfill, bar.symbol, minutes)

    def _write(self, ticks: list[tuple], closed: list[BarData], corrected: list[BarData]) -> None:
        close_old_connections()
        if ticks:
            ticks_insert(ticks=ticks)
            self.stats.ticks_written += len(ticks)
        if closed or corrected:
            bars_upsert(bars=closed + corrected)
        self.stats.bars_corrected += len(corrected)
        for bar in closed:  # announce only after the bar is stored
            self.stats.bars_closed += 1
            if self.keep_published:
                self.stats.published.append(bar)
            try:
                self.on_bar(bar)
            except Exception:
                log.exception("bar-close handler failed for %s %s", bar.symbol, bar.ts)
        if self.publish_ticks and ticks:
            self._publish_ticks(ticks)

    def _publish_ticks(self, ticks: list[tuple]) -> None:
        """The newest second per symbol to `ticks.<SYMBOL>` (dashboard); best effort."""
        layer = get_channel_layer()
        if layer is None:
            return
        newest: dict[str, tuple] = {}
        for row in ticks:
            if row[0] not in newest or row[1] > newest[row[0]][1]:
                newest[row[0]] = row
        for symbol, row in newest.items():
            try:
                async_to_sync(layer.group_send)(
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

    def _backfill(self, symbol: str, minutes) -> None:
        close_old_connections()
        filled = gap_backfill(symbol=symbol, minutes=minutes, fetch=self.rest_fetch)
        self.stats.gaps_filled += len(filled)

    async def aclose(self) -> None:
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self.close_open_minutes()
        loop = asyncio.get_running_loop()
        for pool in (self._rest, self._db):  # release each thread's DB connection
            await loop.run_in_executor(pool, connections.close_all)
            await loop.run_in_executor(None, pool.shutdown, True)
