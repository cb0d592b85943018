"""The dashboard's websocket, `/ws/live/`: pushes closed bars and panel changes to the browser.

Two modes, chosen once per connection and told to the page in `hello`:
- push (a channel layer shared between processes, i.e. Redis): nothing is polled. Bars arrive on
  the groups `bars.<SYMBOL>` (`marketdata.events.publish_bar_closed`), and every committed
  change of the account arrives as one `live.event` on `live.account`
  (`autotrader_site.live_events.live_event_publish`), answered with a fresh panel snapshot. An
  idle page costs no database query at all.
- poll (no layer, or the in-memory layer, which cannot reach this process from the replay or the
  worker: the embedded `make run`): the stored bars and a cheap panel fingerprint are read every
  POLL_SECONDS.

When the channel layer is lost (Redis down) the page is told `status` live=false and shows its
panels as stale; the consumer retries every RETRY_SECONDS and, once the layer answers again,
re-joins its groups, re-sends the charts and the panels (what happened meanwhile included) and
says live=true.

Messages to the browser: `hello` (who, symbols, mode), `chart` (a symbol's full series), `bar`
(one closed bar with its indicator values), `panel` (everything else), `status`, `error`.
Messages from the browser: `{"action": "subscribe", "symbols": [...]}`, `{"action": "refresh"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.utils import await_many_dispatch

from analytics import dashboard_selectors as selectors
from autotrader_site.live_events import ACCOUNT_GROUP
from marketdata.events import symbol_group
from marketdata.types import BarData

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
RETRY_SECONDS = 1.0
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")


def layer_reaches_this_process(layer) -> bool:
    """True when other processes (worker, streamer, replay) can send to this one's consumers."""
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def __call__(self, scope, receive, send):
        """AsyncConsumer.__call__ with a channel receive that survives a channel-layer outage
        (the stock one ends the consumer, and the page, on the first Redis error)."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        sources = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = self._channel_receive
            sources.append(self._channel_receive)
        with contextlib.suppress(StopConsumer):
            await await_many_dispatch(sources, self.dispatch)

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.charts: dict[str, selectors.ChartSeries] = {}
        self.push = layer_reaches_this_process(self.channel_layer)
        self.fingerprint = None
        self.wake = asyncio.Event()
        self.wake.set()  # the first snapshot
        self.bar_lock = asyncio.Lock()
        self.stale_since: float | None = None
        self.event_sent_at: float | None = None
        await self.accept()
        joined = await self._join_groups()
        symbols = await database_sync_to_async(selectors.dashboard_symbols)()
        await self.send_json(
            {
                "type": "hello",
                "user": user.get_username(),
                "symbols": symbols,
                "mode": "push" if self.push else "poll",
                "poll_seconds": None if self.push else POLL_SECONDS,
            }
        )
        if not joined:
            await self._mark_stale("channel layer unreachable")
        self.updater = asyncio.create_task(self._update_forever())

    async def disconnect(self, code):
        updater = getattr(self, "updater", None)
        if updater is not None:
            updater.cancel()
        if self.channel_layer is not None and hasattr(self, "charts"):
            with contextlib.suppress(Exception):  # Redis may be the reason we are leaving
                await self.channel_layer.group_discard(ACCOUNT_GROUP, self.channel_name)
                for symbol in self.charts:
                    await self.channel_layer.group_discard(symbol_group(symbol), self.channel_name)

    async def receive_json(self, content, **kwargs):
        action = content.get("action") if isinstance(content, dict) else None
        if action == "subscribe":
            await self._subscribe(content.get("symbols"))
        elif action == "refresh":
            self.fingerprint = None
            self.wake.set()
        else:
            await self.send_json({"type": "error", "error": f"unknown action {action!r}"})

    async def _subscribe(self, symbols) -> None:
        if not isinstance(symbols, list):
            await self.send_json({"type": "error", "error": "symbols must be a list"})
            return
        wanted = []
        for raw in symbols[: selectors.MAX_CHART_SYMBOLS]:
            symbol = str(raw).upper().strip()
            if _SYMBOL.match(symbol) and symbol not in wanted:
                wanted.append(symbol)
        for symbol in wanted:
            if symbol in self.charts:
                continue
            if self.channel_layer is not None and self.stale_since is None:
                with contextlib.suppress(Exception):  # re-joined on recovery
                    await self.channel_layer.group_add(symbol_group(symbol), self.channel_name)
            await self._send_chart(symbol)
        self.fingerprint = None  # markers of the new symbols come with the next panel
        self.wake.set()

    async def _send_chart(self, symbol: str) -> None:
        chart = selectors.ChartSeries(symbol)
        async with self.bar_lock:
            self.charts[symbol] = chart
            series = await database_sync_to_async(chart.load)()
        await self.send_json({"type": "chart", **series})

    # --- channel layer: handlers, outage and recovery -------------------------------------------
    async def bar_closed(self, event):
        """A bar closed somewhere (streamer, replay): extend that symbol's chart."""
        try:
            bar = BarData.from_event(event["bar"])
        except (KeyError, TypeError, ValueError):
            log.warning("live: malformed bar event %r", event)
            return
        await self._push_bar(bar)

    async def live_event(self, event):
        """The account changed somewhere (a committed write): refresh the panels now."""
        sent_at = event.get("sent_at")
        if isinstance(sent_at, int | float) and self.event_sent_at is None:
            self.event_sent_at = float(sent_at)  # the oldest event the next snapshot answers
        self.wake.set()

    async def _channel_receive(self):
        while True:
            try:
                return await self.channel_layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if await self._join_groups():
                    # A blip (one read timed out or was reset, the layer answers at once): a
                    # message may have been lost with it, so refresh the panels, stay live.
                    log.info("live: channel layer blip (%s); panels refreshed", type(exc).__name__)
                    self.wake.set()
                    continue
                await self._mark_stale(f"channel layer unreachable ({type(exc).__name__})")
                await self._recover()

    async def _join_groups(self) -> bool:
        if self.channel_layer is None:
            return True
        try:
            await self.channel_layer.group_add(ACCOUNT_GROUP, self.channel_name)
            for symbol in self.charts:
                await self.channel_layer.group_add(symbol_group(symbol), self.channel_name)
        except Exception:
            return False
        return True

    async def _mark_stale(self, reason: str) -> None:
        if self.stale_since is not None:
            return
        self.stale_since = time.time()
        log.warning("live: %s; panels marked stale", reason)
        with contextlib.suppress(Exception):
            await self.send_json(
                {"type": "status", "live": False, "since": self.stale_since, "reason": reason}
            )

    async def _recover(self) -> None:
        """Wait for the channel layer, re-join, and resend what the page may have missed."""
        while not await self._join_groups():
            await asyncio.sleep(RETRY_SECONDS)
        for symbol in list(self.charts):
            await self._send_chart(symbol)  # bars published during the outage are stored ones
        self.stale_since = None
        self.fingerprint = None
        await self._send_panel()
        await self.send_json({"type": "status", "live": True})
        log.info("live: channel layer back; panels live again")

    # --- updates ----------------------------------------------------------------------------------
    async def _push_bar(self, bar: BarData) -> None:
        chart = self.charts.get(bar.symbol)
        if chart is None:
            return
        async with self.bar_lock:
            point = chart.push(bar)
        if point is not None:
            await self.send_json({"type": "bar", "symbol": bar.symbol, **point})

    async def _update_forever(self) -> None:
        while True:
            try:
                if self.push:
                    await self.wake.wait()
                    self.wake.clear()
                    if self.stale_since is None:
                        await self._send_panel()
                else:
                    await self._poll_once()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), timeout=POLL_SECONDS)
                    self.wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the page's stream
                log.exception("live: panel update failed; retrying")
                await asyncio.sleep(POLL_SECONDS)

    async def _send_panel(self) -> None:
        answered = self.event_sent_at
        self.event_sent_at = None
        snapshot = await database_sync_to_async(selectors.panel_snapshot)(symbols=list(self.charts))
        message = {"type": "panel", **snapshot}
        if answered is not None:
            message["event_sent_at"] = answered
        await self.send_json(message)

    async def _poll_once(self) -> None:
        """The fallback path: stored bars and a fingerprint of the panels, every POLL_SECONDS."""
        for chart in list(self.charts.values()):
            for bar in await database_sync_to_async(chart.new_bars)():
                await self._push_bar(bar)
        fingerprint = await database_sync_to_async(selectors.panel_fingerprint)()
        if fingerprint == self.fingerprint:
            return
        self.fingerprint = fingerprint
        await self._send_panel()
