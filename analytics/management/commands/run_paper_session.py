"""`make run`: serve the web app and trade a replayed session on the paper broker.

Embedded default (no REDIS_URL): one web process plus this process, which replays bars through
the live path with Celery tasks running in-process. With REDIS_URL set, a Celery worker and beat
are started too and the bar-close tasks travel through Redis, exactly as in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from autotrader_site.clock import MarketClock
from marketdata.replay import (
    ReplayFeed,
    day_clock_end,
    publish_clock_tick,
    read_bars_file,
    store_and_publish,
    synthetic_sessions,
)
from marketdata.timestamps import zone
from marketdata.types import BarData

HEARTBEAT_EVERY_SEC = 10.0


class Command(BaseCommand):
    help = "Serve AutoTrader and run a paper session replaying bars (REPLAY_FILE or synthetic)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--file", default=settings.REPLAY_FILE, help="CSV or Parquet of 1-minute bars"
        )
        parser.add_argument(
            "--tz", default="", help="timezone of naive times in --file (refused without it)"
        )
        parser.add_argument("--symbol", default=settings.REPLAY_SYMBOL)
        parser.add_argument(
            "--speed",
            type=float,
            default=settings.REPLAY_SPEED,
            help="x real time; 0 = as fast as possible",
        )
        parser.add_argument(
            "--sessions",
            type=int,
            default=settings.REPLAY_SESSIONS,
            help="synthetic sessions when no file is given",
        )
        parser.add_argument(
            "--warmup-bars",
            type=int,
            default=settings.REPLAY_WARMUP_BARS,
            help="bars published without pacing at the start",
        )
        parser.add_argument("--no-serve", action="store_true", help="replay only, no web server")
        parser.add_argument(
            "--exit-when-done", action="store_true", help="stop the server when the replay ends"
        )

    def handle(self, *args, **opts):
        children: list[subprocess.Popen] = []
        stopping = {"flag": False}

        def _stop(signum, frame):
            stopping["flag"] = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        try:
            if not opts["no_serve"]:
                children += self._start_processes()
            if settings.CELERY_TASK_ALWAYS_EAGER:
                # This process is the worker: reconcile before trading (fail closed).
                from trading.reconciliation import startup_reconcile

                result = startup_reconcile()
                if not result.get("ok"):
                    raise CommandError(f"start-up reconciliation failed: {result}")
            bars = self._bars(opts)
            self.stdout.write(
                f"Paper session: replaying {len(bars)} bars of {opts['symbol']} at "
                f"{opts['speed']:g}x (DRY_RUN={'1' if settings.DRY_RUN else '0'})"
            )
            feed = ReplayFeed(
                bars,
                on_bar=self._on_bar,
                set_clock=MarketClock.set_replay_time,
                speed=opts["speed"],
                warmup_bars=opts["warmup_bars"],
                on_clock=publish_clock_tick,
                clock_end=day_clock_end,
            )
            stats = feed.run(stop=lambda: stopping["flag"])
            self.stdout.write(
                self.style.SUCCESS(
                    f"Replay finished: {stats.published} bars published, {stats.skipped} failed"
                )
            )
            if children and not opts["exit_when_done"]:
                self.stdout.write(
                    f"Serving on http://{settings.BIND_ADDRESS}:{settings.PORT}/ - Ctrl-C to stop"
                )
                while not stopping["flag"] and all(c.poll() is None for c in children):
                    self._heartbeat()
                    time.sleep(0.5)
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()

    _last_beat = 0.0

    def _heartbeat(self) -> None:
        """In the embedded mode this process is the worker: tell the health endpoint so."""
        if (
            not settings.CELERY_TASK_ALWAYS_EAGER
            or time.monotonic() - self._last_beat < HEARTBEAT_EVERY_SEC
        ):
            return
        from trading.services import heartbeat_record

        heartbeat_record(
            name=f"embedded@{os.uname().nodename}:{os.getpid()}", now=datetime.now(UTC)
        )
        self._last_beat = time.monotonic()

    def _on_bar(self, bar: BarData) -> None:
        store_and_publish(bar)
        self._heartbeat()

    def _bars(self, opts):
        symbol = opts["symbol"].upper()
        if opts["file"]:
            path = Path(opts["file"])
            if not path.is_file():
                raise CommandError(f"REPLAY_FILE {path} does not exist")
            try:
                return list(read_bars_file(path, symbol=symbol, tz=zone(opts["tz"])))
            except ValueError as exc:  # naive times without --tz, a bad --tz, a bad header
                raise CommandError(str(exc)) from exc
        return synthetic_sessions(
            symbol=symbol, sessions=opts["sessions"], seed=settings.REPLAY_SEED
        )

    def _start_processes(self) -> list[subprocess.Popen]:
        env = os.environ.copy()
        python = sys.executable
        bindir = Path(python).parent
        procs = [
            [
                python,
                "-m",
                "uvicorn",
                "autotrader_site.asgi:application",
                "--host",
                settings.BIND_ADDRESS,
                "--port",
                str(settings.PORT),
                "--log-level",
                "warning",
            ]
        ]
        if settings.REDIS_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
            celery = str(bindir / "celery")
            procs.append(
                [celery, "-A", "autotrader_site", "worker", "-l", "warning", "--concurrency", "2"]
            )
            procs.append(
                [
                    celery,
                    "-A",
                    "autotrader_site",
                    "beat",
                    "-l",
                    "warning",
                    "--scheduler",
                    "django_celery_beat.schedulers:DatabaseScheduler",
                ]
            )
        started = [subprocess.Popen(cmd, env=env) for cmd in procs]
        self.stdout.write(
            f"Web: http://{settings.BIND_ADDRESS}:{settings.PORT}/api/v1/diag/health"
            f"  admin: http://{settings.BIND_ADDRESS}:{settings.PORT}/admin/"
        )
        time.sleep(1.0)
        return started
