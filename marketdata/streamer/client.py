"""One websocket connection to one Polygon cluster, kept alive.

connect → wait for `connected` → auth → subscribe → read frames. Reconnects with full-jitter
exponential backoff; stops for good (StreamAuthError) on `auth_failed`, and when every symbol
of the cluster has been refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from autotrader_site.metrics import (
    STREAM_LAG_SECONDS,
    STREAM_MESSAGES_TOTAL,
    STREAM_RECONNECTS_TOTAL,
)
from marketdata.bar_builder import SecondAgg
from marketdata.clients.symbols import polygon_ticker
from marketdata.streamer.protocol import (
    AUTH_FAILED,
    AUTH_SUCCESS,
    AUTH_TIMEOUT,
    RECONNECT_STATUSES,
    MalformedMessage,
    agg_from_event,
    is_symbol_error,
    parse_message,
    subscription_params,
    tickers_named,
)

log = logging.getLogger(__name__)


class StreamAuthError(RuntimeError):
    """The key was refused: retrying would only hammer the server."""


class NoSymbolsLeft(RuntimeError):
    """Every symbol of the cluster was refused (not entitled)."""


class _Reconnect(Exception):
    pass


class ClusterStream:
    def __init__(
        self,
        *,
        url: str,
        cluster: str,
        api_key: str,
        symbols: list[str],
        on_aggs: Callable[[list[SecondAgg]], Awaitable[None] | None],
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        open_timeout: float = 10.0,
        auth_timeout: float = 10.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_disconnect: Callable[[str], None] | None = None,
        on_state: Callable[[str, str], None] | None = None,
    ) -> None:
        self.url = url
        self.cluster = cluster
        self.api_key = api_key
        self.tickers = [polygon_ticker(s) for s in symbols]
        self.dropped: dict[str, str] = {}  # ticker → why
        self.on_aggs = on_aggs
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.open_timeout = open_timeout
        self.auth_timeout = auth_timeout
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.on_disconnect = on_disconnect or (lambda cluster: None)
        self.on_state = on_state or (lambda cluster, state: None)
        self.connections = 0
        self.reconnects = 0
        self.waits: list[float] = []

    def _count(self, kind: str, n: int = 1) -> None:
        STREAM_MESSAGES_TOTAL.labels(cluster=self.cluster, kind=kind).inc(n)

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until `stop` is set. Raises StreamAuthError / NoSymbolsLeft."""
        failures = 0
        while not stop.is_set():
            if not self.tickers:
                raise NoSymbolsLeft(f"{self.cluster}: no symbols left ({self.dropped})")
            streamed = False
            self.on_state(self.cluster, "connecting")
            try:
                streamed = await self._until_stopped(self._session(stop), stop)
            except (StreamAuthError, NoSymbolsLeft):
                raise
            except (
                OSError,
                ConnectionClosed,
                InvalidHandshake,
                InvalidURI,
                TimeoutError,
                _Reconnect,
            ) as exc:
                log.warning("%s stream: %s: %s", self.cluster, type(exc).__name__, exc)
            finally:
                if not stop.is_set():  # what is sent while away is gone
                    self.on_disconnect(self.cluster)
            if stop.is_set():
                return
            failures = 0 if streamed else failures + 1
            delay = self.rng.uniform(0, min(self.backoff_max, self.backoff_base * 2**failures))
            self.waits.append(delay)
            self.reconnects += 1
            STREAM_RECONNECTS_TOTAL.labels(cluster=self.cluster).inc()
            self.on_state(self.cluster, "backing_off")
            await self._wait(stop, delay)

    @staticmethod
    async def _until_stopped(work: Awaitable[bool], stop: asyncio.Event) -> bool:
        """`work`, cancelled as soon as `stop` is set (a connect to a silent host, a TLS
        handshake, an auth answer that never comes: none may outlive a stop)."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False
        return task.result()

    async def _wait(self, stop: asyncio.Event, delay: float) -> None:
        stopper = asyncio.ensure_future(stop.wait())
        sleeper = asyncio.ensure_future(self.sleep(delay))
        await asyncio.wait({stopper, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopper, sleeper):
            task.cancel()

    async def _session(self, stop: asyncio.Event) -> bool:
        """One connection's life. Returns True when data flowed (resets the backoff)."""
        streamed = False
        async with connect(
            self.url,
            open_timeout=self.open_timeout,
            close_timeout=1.0,  # a stop never waits long for a silent server's close frame
            ping_interval=20,
            max_queue=1024,
        ) as ws:
            self.connections += 1
            await ws.send(json.dumps({"action": "auth", "params": self.api_key}))
            await self._await_auth(ws)
            await ws.send(
                json.dumps({"action": "subscribe", "params": subscription_params(self.tickers)})
            )
            log.info("%s stream: subscribed %s", self.cluster, ",".join(self.tickers))
            self.on_state(self.cluster, "streaming")
            receiver = asyncio.ensure_future(self._receive(ws))
            stopper = asyncio.ensure_future(stop.wait())
            try:
                done, _ = await asyncio.wait(
                    {receiver, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stopper.cancel()
                if not receiver.done():
                    receiver.cancel()
                    await asyncio.gather(receiver, return_exceptions=True)
            if receiver in done:
                streamed = receiver.result()
            return streamed

    async def _await_auth(self, ws) -> None:
        deadline = time.monotonic() + self.auth_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Reconnect("no auth answer")
            raw = await asyncio.wait_for(ws.recv(), remaining)
            try:
                events = parse_message(raw)
            except MalformedMessage as exc:
                self._count("malformed")
                log.warning("%s stream: %s", self.cluster, exc)
                continue
            for event in events:
                if event.get("ev") != "status":
                    continue
                self._count("status")
                status = event.get("status")
                if status == AUTH_SUCCESS:
                    return
                if status == AUTH_FAILED:
                    raise StreamAuthError(
                        f"Polygon {self.cluster} stream refused the key: {event.get('message')}"
                        " (check POLYGON_WS_KEY / POLYGON_API_KEY)"
                    )
                if status == AUTH_TIMEOUT or status in RECONNECT_STATUSES:
                    raise _Reconnect(f"{status}: {event.get('message')}")

    async def _receive(self, ws) -> bool:
        """Read frames until the server closes; returns whether any data arrived."""
        streamed = False
        while True:
            try:
                raw = await ws.recv()
            except ConnectionClosed as exc:
                log.warning("%s stream closed: %s", self.cluster, exc)
                return streamed
            try:
                events = parse_message(raw)
            except MalformedMessage as exc:
                self._count("malformed")
                log.warning("%s stream: %s", self.cluster, exc)
                continue
            aggs: list[SecondAgg] = []
            for event in events:
                kind = event.get("ev")
                if kind == "status":
                    self._count("status")
                    await self._on_status(ws, event)
                elif kind == "A":
                    try:
                        aggs.append(agg_from_event(event))
                    except ValueError as exc:
                        self._count("invalid")
                        log.warning("%s stream: bad aggregate %r: %s", self.cluster, event, exc)
                else:
                    self._count(str(kind or "unknown")[:12])
            if aggs:
                self._count("A", len(aggs))
                newest = max(a.start for a in aggs) + 1
                STREAM_LAG_SECONDS.labels(cluster=self.cluster).set(max(0.0, time.time() - newest))
                streamed = True
                result = self.on_aggs(aggs)
                if asyncio.iscoroutine(result):
                    await result

    async def _on_status(self, ws, event: dict) -> None:
        status = event.get("status")
        message = str(event.get("message", ""))
        if status == AUTH_FAILED:
            raise StreamAuthError(f"Polygon {self.cluster} stream: auth_failed: {message}")
        if status in RECONNECT_STATUSES:
            log.warning("%s stream: %s (%s); reconnecting", self.cluster, status, message)
            raise _Reconnect(f"{status}: {message}")
        if is_symbol_error(event):
            named = tickers_named(message, self.tickers)
            if not named:
                log.error("%s stream error naming no subscribed symbol: %s", self.cluster, message)
                return
            for ticker in named:
                log.error("%s stream: dropping %s (%s)", self.cluster, ticker, message)
                self.tickers.remove(ticker)
                self.dropped[ticker] = message
            if not self.tickers:
                raise NoSymbolsLeft(f"{self.cluster}: every symbol refused ({self.dropped})")
            with contextlib.suppress(ConnectionClosed):
                await ws.send(
                    json.dumps({"action": "unsubscribe", "params": subscription_params(named)})
                )
            return
        log.info("%s stream status %s: %s", self.cluster, status, message)
