"""The streamer: one ClusterStream per needed cluster feeding one StreamSink, plus a ticker
(grace closes of quiet feeds, the periodic flush `POLYGON_WS_FLUSH_INTERVAL`, the idle close
of open minutes, the heartbeat)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from autotrader_site.heartbeat import Heartbeat
from marketdata.clients.symbols import cluster_of
from marketdata.streamer.client import ClusterStream, NoSymbolsLeft, StreamAuthError
from marketdata.streamer.sink import StreamSink

log = logging.getLogger(__name__)

CLUSTERS = ("stocks", "indices", "options")


def cluster_url(base: str, cluster: str) -> str:
    """POLYGON_WS_URL may name a cluster (the spec's default ends in /options): strip it and
    put the wanted one instead."""
    root = base.rstrip("/")
    for name in CLUSTERS:
        if root.endswith("/" + name):
            root = root[: -len(name) - 1]
            break
    return f"{root}/{cluster}"


@dataclass
class StreamerConfig:
    url: str
    api_key: str
    symbols: list[str]
    batch: int = 100
    flush_interval: float = 2.0
    grace_sec: float = 2.0
    idle_close_sec: float = 15.0
    backoff_max: float = 60.0
    backoff_base: float = 0.5
    backfill_gaps: bool = True
    heal_delay_sec: float = 5.0

    @classmethod
    def from_settings(cls) -> StreamerConfig:
        return cls(
            url=settings.POLYGON_WS_URL,
            api_key=settings.POLYGON_WS_KEY,
            symbols=list(settings.POLYGON_WS_SYMBOLS),
            batch=settings.POLYGON_WS_BATCH,
            flush_interval=settings.POLYGON_WS_FLUSH_INTERVAL,
            grace_sec=settings.POLYGON_WS_BAR_GRACE_SEC,
            idle_close_sec=settings.POLYGON_WS_IDLE_CLOSE_SEC,
            backoff_max=settings.POLYGON_WS_BACKOFF_MAX_SEC,
            backfill_gaps=settings.STREAM_GAP_BACKFILL,
            heal_delay_sec=settings.STREAM_HEAL_DELAY_SEC,
        )


class StreamerService:
    def __init__(
        self,
        config: StreamerConfig,
        *,
        sink: StreamSink | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        if not config.api_key:
            raise ValueError("the streamer needs POLYGON_WS_KEY (or POLYGON_API_KEY)")
        if not config.symbols:
            raise ValueError("POLYGON_WS_SYMBOLS is empty")
        self.config = config
        self.sink = sink or StreamSink(
            batch=config.batch,
            grace_sec=config.grace_sec,
            backfill_gaps=config.backfill_gaps,
            heal_delay_sec=config.heal_delay_sec,
        )
        self.heartbeat = heartbeat
        self.states: dict[str, str] = {}
        self.last_data = time.monotonic()
        by_cluster: dict[str, list[str]] = {}
        for symbol in config.symbols:
            by_cluster.setdefault(cluster_of(symbol), []).append(symbol)
        self.streams = [
            ClusterStream(
                url=cluster_url(config.url, cluster),
                cluster=cluster,
                api_key=config.api_key,
                symbols=symbols,
                on_aggs=self._on_aggs,
                backoff_max=config.backoff_max,
                backoff_base=config.backoff_base,
                on_disconnect=self.sink.interrupted,
                on_state=self._on_state,
            )
            for cluster, symbols in by_cluster.items()
        ]
        self.errors: list[str] = []

    async def _on_aggs(self, aggs) -> None:
        self.last_data = time.monotonic()
        await self.sink.add(aggs)

    def _on_state(self, cluster: str, state: str) -> None:
        self.states[cluster] = state
        self._beat(force=True)

    def _beat(self, *, force: bool = False, state: str | None = None) -> None:
        if self.heartbeat is None:
            return
        states = set(self.states.values())
        overall = state or (states.pop() if len(states) == 1 else "mixed")
        self.heartbeat.beat(
            force=force,
            state=overall,
            clusters=dict(self.states),
            last_data_age_sec=round(time.monotonic() - self.last_data, 1),
            pending=self.sink.pending,
            bars_closed=self.sink.stats.bars_closed,
            provisional_closed=self.sink.stats.provisional_closed,
            bars_healed=self.sink.stats.bars_healed,
            flush_failures=self.sink.stats.flush_failures,
        )

    async def _ticker(self, stop: asyncio.Event) -> None:
        """Grace closes of quiet feeds (often), the periodic flush, the idle close and the
        heartbeat; every wait races `stop`."""
        idle_closed = False
        step = max(0.01, min(self.config.flush_interval, 0.25))
        last_flush = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), step)
            if stop.is_set():
                return
            await self.sink.tick()
            self._beat()
            idle = time.monotonic() - self.last_data >= self.config.idle_close_sec
            if idle and not idle_closed:
                await self.sink.close_open_minutes()
                idle_closed = True
            elif time.monotonic() - last_flush >= self.config.flush_interval:
                last_flush = time.monotonic()
                await self.sink.flush()
            if not idle:
                idle_closed = False

    async def _run_stream(self, stream: ClusterStream, stop: asyncio.Event) -> None:
        try:
            await stream.run(stop)
        except NoSymbolsLeft as exc:
            self.errors.append(str(exc))
            log.error("%s", exc)
        except StreamAuthError as exc:
            self.errors.append(str(exc))
            log.error("%s — stopping the streamer", exc)
            stop.set()
            raise

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Stream until `stop` is set (or auth fails: StreamAuthError). Data in flight is
        flushed and open minutes are closed before returning."""
        stop = stop or asyncio.Event()
        ticker = asyncio.ensure_future(self._ticker(stop))
        self.sink.heal_stored(before=datetime.now(UTC))
        try:
            results = await asyncio.gather(
                *(self._run_stream(s, stop) for s in self.streams), return_exceptions=True
            )
            auth = [r for r in results if isinstance(r, StreamAuthError)]
            if auth:
                raise auth[0]
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        finally:
            stop.set()
            self._beat(force=True, state="stopping")
            await asyncio.gather(ticker, return_exceptions=True)
            await self.sink.aclose()
            self._beat(force=True, state="stopped")
