"""The streamer: one ClusterStream per needed cluster feeding one StreamSink, plus the
periodic flush (`POLYGON_WS_FLUSH_INTERVAL`) and the idle close of open minutes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings

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
        )


class StreamerService:
    def __init__(self, config: StreamerConfig, *, sink: StreamSink | None = None) -> None:
        if not config.api_key:
            raise ValueError("the streamer needs POLYGON_WS_KEY (or POLYGON_API_KEY)")
        if not config.symbols:
            raise ValueError("POLYGON_WS_SYMBOLS is empty")
        self.config = config
        self.sink = sink or StreamSink(
            batch=config.batch, grace_sec=config.grace_sec, backfill_gaps=config.backfill_gaps
        )
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
            )
            for cluster, symbols in by_cluster.items()
        ]
        self.errors: list[str] = []

    async def _on_aggs(self, aggs) -> None:
        self.last_data = time.monotonic()
        await self.sink.add(aggs)

    async def _ticker(self, stop: asyncio.Event) -> None:
        idle_closed = False
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.flush_interval)
            idle = time.monotonic() - self.last_data >= self.config.idle_close_sec
            if idle and not idle_closed:
                await self.sink.close_open_minutes()
                idle_closed = True
            else:
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
            await asyncio.gather(ticker, return_exceptions=True)
            await self.sink.aclose()
