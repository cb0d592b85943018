"""Run the Polygon streamer as a Channels background consumer in this process.

SIGTERM/SIGINT stop it within SHUTDOWN_DEADLINE_SEC in every state (connecting, backing off,
streaming, flushing), pending ticks and bars written. Without credentials, or with a key
Polygon refuses, it says so once and exits 0: restarting cannot fix configuration, so
compose (`restart: on-failure`) and honcho do not loop on it.
"""

from __future__ import annotations

import asyncio
import sys

from channels.layers import InMemoryChannelLayer
from channels.routing import ChannelNameRouter
from channels.worker import Worker
from django.core.management.base import BaseCommand

from autotrader_site.heartbeat import Heartbeat
from autotrader_site.shutdown import GracefulStop
from marketdata.streamer.client import StreamAuthError
from marketdata.streamer.consumer import STREAMER_CHANNEL, StreamerConsumer
from marketdata.streamer.service import StreamerConfig

HEARTBEAT_NAME = "streamer"


class Command(BaseCommand):
    help = "Stream Polygon per-second aggregates into ticks and 1-minute bars (Ctrl-C stops)."

    def add_arguments(self, parser):
        parser.add_argument("--symbols", help="comma list overriding POLYGON_WS_SYMBOLS")
        parser.add_argument("--url", help="websocket base URL overriding POLYGON_WS_URL")

    def handle(self, *args, **options):
        config = StreamerConfig.from_settings()
        if options.get("symbols"):
            config.symbols = [s.strip().upper() for s in options["symbols"].split(",") if s]
        if options.get("url"):
            config.url = options["url"]
        heartbeat = Heartbeat(HEARTBEAT_NAME)
        if not config.api_key:
            self._disabled(heartbeat, "no Polygon key: set POLYGON_WS_KEY or POLYGON_API_KEY")
            return
        try:
            asyncio.run(run_worker(config, heartbeat=heartbeat))
        except StreamAuthError as exc:
            self._disabled(heartbeat, str(exc))
            return
        self.stdout.write("streamer stopped")

    def _disabled(self, heartbeat: Heartbeat, why: str) -> None:
        heartbeat.beat(force=True, state="disabled", reason=why)
        sys.stderr.write(f"streamer not started: {why}. Not retrying (exit 0).\n")


async def run_worker(config: StreamerConfig, *, heartbeat: Heartbeat | None = None) -> None:
    """Start the consumer through a process-local channel layer (control messages only; bars
    and ticks go to the configured layer) and wait until it finishes or a signal stops it."""
    control = InMemoryChannelLayer()
    finished: asyncio.Future = asyncio.get_running_loop().create_future()
    app = ChannelNameRouter(
        {
            STREAMER_CHANNEL: StreamerConsumer.as_asgi(
                finished=finished, config=config, heartbeat=heartbeat
            )
        }
    )
    worker = Worker(application=app, channels=[STREAMER_CHANNEL], channel_layer=control)
    listener = asyncio.ensure_future(worker.handle())
    stopping = GracefulStop("streamer").install_async()

    async def stop_on_signal() -> None:
        await stopping.wait()
        await control.send(STREAMER_CHANNEL, {"type": "streamer.stop"})

    watcher = asyncio.ensure_future(stop_on_signal())
    await control.send(STREAMER_CHANNEL, {"type": "streamer.start"})
    try:
        await finished
    finally:
        watcher.cancel()
        listener.cancel()
        await asyncio.gather(watcher, listener, return_exceptions=True)
