"""The streamer as a Channels background consumer.

Send `{"type": "streamer.start"}` to the `marketdata-streamer` channel (what
`manage.py run_streamer` does for you, or `manage.py runworker marketdata-streamer` plus a
start message) and the consumer runs StreamerService until `{"type": "streamer.stop"}`.
"""

from __future__ import annotations

import asyncio
import logging

from channels.consumer import AsyncConsumer

from marketdata.streamer.service import StreamerConfig, StreamerService

log = logging.getLogger(__name__)

STREAMER_CHANNEL = "marketdata-streamer"


class StreamerConsumer(AsyncConsumer):
    # Control messages come only from the worker's own channel. Listening on the configured
    # (Redis) layer as well would tie the streamer's life to that connection: a Redis error
    # there ends the consumer silently, and a later stop message would find nothing to stop.
    channel_layer_alias = "marketdata-streamer-control-only"  # deliberately not configured

    def __init__(
        self,
        *args,
        finished: asyncio.Future | None = None,
        config: StreamerConfig | None = None,
        service_factory=StreamerService,
        heartbeat=None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.finished = finished
        self.config = config
        self.service_factory = service_factory
        self.heartbeat = heartbeat
        self.stop_event: asyncio.Event | None = None
        self.task: asyncio.Task | None = None

    async def streamer_start(self, message: dict) -> None:
        if self.task is not None and not self.task.done():
            log.info("streamer already running")
            return
        config = self.config or StreamerConfig.from_settings()
        service = self.service_factory(config, heartbeat=self.heartbeat)
        self.stop_event = asyncio.Event()
        self.task = asyncio.ensure_future(service.run(self.stop_event))
        self.task.add_done_callback(self._done)
        log.info("streamer started for %s", ",".join(config.symbols))

    async def streamer_stop(self, message: dict) -> None:
        if self.stop_event is not None:
            self.stop_event.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)

    def _done(self, task: asyncio.Task) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("streamer stopped: %s", exc)
        if self.finished is not None and not self.finished.done():
            if exc is not None:
                self.finished.set_exception(exc)
            else:
                self.finished.set_result(None)
