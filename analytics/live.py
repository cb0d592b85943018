"""The dashboard's websocket, `/ws/live/`: pushes closed bars and panel changes to the browser.

Sources, so the page is live in every way AutoTrader runs:
- bars: the channel-layer group `bars.<SYMBOL>` that `marketdata.events.publish_bar_closed`
  sends to, and, as a fallback when the layer does not reach this process (embedded mode with the
  in-memory layer and the replay in another process), the stored bars polled every second;
- panels (account, trading state, trades, orders, fills, signals): the database, polled every
  second through a cheap fingerprint; a message on the group `live.account` (type
  `live.event`) makes the next poll happen at once, for any stage that wants to publish.

Messages to the browser: `hello` (who, symbols), `chart` (a symbol's full series), `bar` (one
closed bar with its indicator values), `panel` (everything else), `error`.
Messages from the browser: `{"action": "subscribe", "symbols": [...]}`, `{"action": "refresh"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from analytics import dashboard_selectors as selectors
from marketdata.events import symbol_group
from marketdata.types import BarData

log = logging.getLogger(__name__)

ACCOUNT_GROUP = "live.account"
POLL_SECONDS = 1.0
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.charts: dict[str, selectors.ChartSeries] = {}
        self.fingerprint = None
        self.wake = asyncio.Event()
        self.bar_lock = asyncio.Lock()
        await self.accept()
        if self.channel_layer is not None:
            await self.channel_layer.group_add(ACCOUNT_GROUP, self.channel_name)
        symbols = await database_sync_to_async(selectors.dashboard_symbols)()
        await self.send_json(
            {
                "type": "hello",
                "user": user.get_username(),
                "symbols": symbols,
                "poll_seconds": POLL_SECONDS,
            }
        )
        self.poller = asyncio.create_task(self._poll_forever())

    async def disconnect(self, code):
        poller = getattr(self, "poller", None)
        if poller is not None:
            poller.cancel()
        if self.channel_layer is not None and hasattr(self, "charts"):
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
            chart = selectors.ChartSeries(symbol)
            async with self.bar_lock:
                self.charts[symbol] = chart
                series = await database_sync_to_async(chart.load)()
            if self.channel_layer is not None:
                await self.channel_layer.group_add(symbol_group(symbol), self.channel_name)
            await self.send_json({"type": "chart", **series})
        self.fingerprint = None  # markers of the new symbols come with the next panel
        self.wake.set()

    # --- channel-layer handlers ---------------------------------------------------------------
    async def bar_closed(self, event):
        """A bar closed somewhere (streamer, replay): extend that symbol's chart."""
        try:
            bar = BarData.from_event(event["bar"])
        except (KeyError, TypeError, ValueError):
            log.warning("live: malformed bar event %r", event)
            return
        await self._push_bar(bar)

    async def live_event(self, event):
        """Anything changed on the account side: refresh the panels now."""
        self.wake.set()

    # --- polling --------------------------------------------------------------------------------
    async def _push_bar(self, bar: BarData) -> None:
        chart = self.charts.get(bar.symbol)
        if chart is None:
            return
        async with self.bar_lock:
            point = chart.push(bar)
        if point is not None:
            await self.send_json({"type": "bar", "symbol": bar.symbol, **point})

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self._poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the page's stream
                log.exception("live: poll failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=POLL_SECONDS)
            self.wake.clear()

    async def _poll_once(self) -> None:
        for chart in list(self.charts.values()):
            for bar in await database_sync_to_async(chart.new_bars)():
                await self._push_bar(bar)
        fingerprint = await database_sync_to_async(selectors.panel_fingerprint)()
        if fingerprint == self.fingerprint:
            return
        self.fingerprint = fingerprint
        snapshot = await database_sync_to_async(selectors.panel_snapshot)(symbols=list(self.charts))
        await self.send_json({"type": "panel", **snapshot})
