"""Run the Tradier account event stream in this process (one owner across processes).

`--check` is the container healthcheck: healthy when this account's stream is live, or when
another process holds the lease (a standby), or when the stream is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

STOP_GRACE_SEC = 4.0


class Command(BaseCommand):
    help = "Stream Tradier account (order) events into the ledger; SIGTERM stops within 5 s."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="healthcheck and exit")
        parser.add_argument("--ws-url", help="websocket URL overriding TRADIER_ACCOUNT_WS_URL")

    def handle(self, *args, **options):
        from marketdata.clients.tradier_budget import redis_client

        if options["check"]:
            return self._check(redis_client())
        if settings.DRY_RUN or not settings.ACCOUNT_STREAM_ENABLED:
            # Idle until stopped, so a stack started in paper mode does not restart-loop it.
            why = "DRY_RUN=1 (paper broker)" if settings.DRY_RUN else "ACCOUNT_STREAM_ENABLED=0"
            self.stdout.write(f"{why}: no account stream; idle until SIGTERM")
            asyncio.run(idle_until_signal())
            return
        from trading.account_stream import AccountStream, StreamConfig
        from trading.brokers.tradier import TradierBroker

        config = StreamConfig.from_settings()
        if options.get("ws_url"):
            config.ws_url = options["ws_url"]
        stream = AccountStream(config, broker=TradierBroker.from_settings(), redis=redis_client())
        asyncio.run(run_until_signal(stream))
        self.stdout.write(
            f"account stream stopped: {stream.stats.connects} connects, "
            f"{stream.stats.events} events, {stream.stats.heartbeats} heartbeats"
        )

    def _check(self, redis) -> None:
        from trading.account_stream import _key, stream_is_live

        if settings.DRY_RUN or not settings.ACCOUNT_STREAM_ENABLED:
            self.stdout.write("ok: no account stream in this mode (paper or disabled)")
            return
        if redis is None:
            raise CommandError("unhealthy: no REDIS_URL, the stream state is unknown")
        if stream_is_live(redis):
            self.stdout.write("ok: stream live")
            return
        if redis.exists(_key(settings.TRADIER_ACCOUNT_ID, "owner")):
            self.stdout.write("ok: another process owns the stream (standby) or it reconnects")
            return
        raise CommandError("unhealthy: no process owns the account stream")


async def idle_until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_until_signal(stream) -> None:
    """Run `stream` until SIGTERM/SIGINT; then stop it, and cancel it if it lingers."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stream.stop)
    task = asyncio.ensure_future(stream.run())
    stop = asyncio.ensure_future(stream.stopping.wait())
    await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if task.done():
        task.result()  # a crash is the command's error
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=STOP_GRACE_SEC)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
