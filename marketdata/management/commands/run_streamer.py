"""Run the Polygon streamer as a Channels background consumer in this process."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from channels.layers import InMemoryChannelLayer
from channels.routing import ChannelNameRouter
from channels.worker import Worker
from django.core.management.base import BaseCommand, CommandError

from marketdata.streamer.client import StreamAuthError
from marketdata.streamer.consumer import STREAMER_CHANNEL, StreamerConsumer
from marketdata.streamer.service import StreamerConfig


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
        if not config.api_key:
            raise CommandError("set POLYGON_WS_KEY or POLYGON_API_KEY to stream")
        try:
            asyncio.run(run_worker(config))
        except StreamAuthError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("streamer stopped")


async def run_worker(config: StreamerConfig) -> None:
    """Start the consumer through a process-local channel layer (control messages only; bars
    and ticks go to the configured layer) and wait until it finishes or a signal stops it."""
    control = InMemoryChannelLayer()
    finished: asyncio.Future = asyncio.get_running_loop().create_future()
    app = ChannelNameRouter(
        {STREAMER_CHANNEL: StreamerConsumer.as_asgi(finished=finished, config=config)}
    )
    worker = Worker(application=app, channels=[STREAMER_CHANNEL], channel_layer=control)
    listener = asyncio.ensure_future(worker.handle())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(
                sig,
                lambda: asyncio.ensure_future(
                    control.send(STREAMER_CHANNEL, {"type": "streamer.stop"})
                ),
            )
    await control.send(STREAMER_CHANNEL, {"type": "streamer.start"})
    try:
        await finished
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
