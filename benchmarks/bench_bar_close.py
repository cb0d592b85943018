"""Bar close latency of the streamer: from the moment the feed shows a minute is over (its
next minute's first aggregate leaves the server) to the closed bar being stored and handed to
the bar-close handler (what runs `publish_bar_closed` → the worker's task).

A local websocket server speaking Polygon's protocol sends `--minutes` minutes of per-second
aggregates for two symbols, pausing between minutes so each close is measured on its own;
the real StreamerService/StreamSink write to PostgreSQL (DATABASE_URL). The periodic flush is
set to 60 s: a latency far below it shows closed bars do not wait for the flush timer.

    DATABASE_URL=postgres://... python benchmarks/bench_bar_close.py [--minutes 60]
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")

SYMBOLS = ("ZBCA", "ZBCB")  # not real tickers: the bench deletes what it wrote
START = int(datetime(2025, 9, 19, 13, 30, tzinfo=UTC).timestamp())


class Feed:
    """The websocket server, in a thread; records when each minute's first frame was sent."""

    def __init__(self, minutes: int, pause: float) -> None:
        self.minutes, self.pause = minutes, pause
        self.sent_at: dict[int, float] = {}  # minute start (epoch s) → perf_counter at send
        self.done = threading.Event()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self.stop = asyncio.Event()
        async with serve(self._client, "127.0.0.1", 0) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self.stop.wait()

    async def _client(self, ws) -> None:
        def status(s: str) -> str:
            return json.dumps([{"ev": "status", "status": s, "message": s}])

        await ws.send(status("connected"))
        await ws.recv()  # auth
        await ws.send(status("auth_success"))
        await ws.recv()  # subscribe
        for second in range(self.minutes * 60 + 1):
            ts = START + second
            frame = [
                {
                    "ev": "A",
                    "sym": sym,
                    "o": 100.0,
                    "h": 100.1,
                    "l": 99.9,
                    "c": 100.05,
                    "v": 10,
                    "vw": 100.0,
                    "z": 2,
                    "s": ts * 1000,
                    "e": (ts + 1) * 1000,
                }
                for sym in SYMBOLS
            ]
            if second % 60 == 0:
                await asyncio.sleep(self.pause)  # let the previous close finish on its own
                self.sent_at[ts] = time.perf_counter()
            await ws.send(json.dumps(frame))
        self.done.set()
        await ws.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--pause", type=float, default=0.2)
    args = parser.parse_args()
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        print(json.dumps({"name": "bar_close", "error": "needs PostgreSQL (DATABASE_URL)"}))
        return
    from marketdata.models import Bar, Tick
    from marketdata.streamer.service import StreamerConfig, StreamerService
    from marketdata.streamer.sink import StreamSink

    feed = Feed(args.minutes, args.pause)
    feed.thread.start()
    feed.ready.wait(10)
    closed_at: dict[tuple[str, int], float] = {}

    def on_bar(bar) -> None:
        closed_at[(bar.symbol, int(bar.ts.timestamp()))] = time.perf_counter()

    config = StreamerConfig(
        url=f"ws://127.0.0.1:{feed.port}/stocks",
        api_key="bench",
        symbols=list(SYMBOLS),
        batch=10_000,
        flush_interval=60.0,
        grace_sec=2.0,
        idle_close_sec=600,
        backfill_gaps=False,
    )
    sink = StreamSink(batch=10_000, backfill_gaps=False, on_bar=on_bar, publish_ticks=False)
    service = StreamerService(config, sink=sink)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(service.run(stop))
        want = args.minutes * len(SYMBOLS)
        deadline = time.monotonic() + 60 + args.minutes * 5
        while len(closed_at) < want and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    try:
        asyncio.run(run())
    finally:
        Bar.objects.filter(symbol__in=SYMBOLS).delete()
        Tick.objects.filter(symbol__in=SYMBOLS).delete()
    latencies = []
    for minute in range(args.minutes):
        next_first = feed.sent_at.get(START + 60 * (minute + 1))
        for sym in SYMBOLS:
            at = closed_at.get((sym, START + 60 * minute))
            if next_first is not None and at is not None:
                latencies.append((at - next_first) * 1000)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(
        json.dumps(
            {
                "name": "bar_close",
                "minutes": args.minutes,
                "bars_closed": len(latencies),
                "feed_shows_over_to_bar_handed_on_ms_p50": round(statistics.median(latencies), 2),
                "feed_shows_over_to_bar_handed_on_ms_p99": round(q[98], 2),
                "feed_shows_over_to_bar_handed_on_ms_max": round(latencies[-1], 2),
                "flush_interval_sec": config.flush_interval,
                "load_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
