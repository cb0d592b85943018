"""Scenario: the real streamer against a hostile fake Polygon (drops, malformed frames,
entitlement errors, slow-consumer disconnects), with gap back-fill through the real Polygon
REST client against the fake's `/v2/aggs`. Counts crashes, lost bars and doubled bars."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from datetime import UTC, datetime

from django.test import override_settings

from tests.faults.fake_polygon import (
    API_KEY,
    FakePolygon,
    FakePolygonState,
    build_plan,
    source_seconds,
    truth_bars,
)

SESSION_START = int(datetime(2025, 9, 19, 14, 0, tzinfo=UTC).timestamp())  # 10:00 ET, a Friday
STOCKS = ["SPY", "QQQ"]
INDICES = ["I:SPX"]
NOT_ENTITLED = "IWM"


def run_stream_faults(
    *, minutes: int, malformed: int, drop_every: int, step: int = 5, timeout: float = 600
) -> dict:
    """Stream `minutes` of source through the faults; needs a migrated database (committed
    writes: the streamer writes from its own thread)."""
    from marketdata.models import Bar
    from marketdata.streamer.service import StreamerConfig, StreamerService
    from marketdata.streamer.sink import StreamSink

    stocks = source_seconds(STOCKS, start=SESSION_START, minutes=minutes, step=step, seed=11)
    indices = source_seconds(INDICES, start=SESSION_START, minutes=minutes, step=step, seed=12)
    truth = truth_bars({**stocks, **indices})
    half = malformed // 2
    plans = {
        "stocks": build_plan(stocks, malformed=malformed - half, seed=5),
        "indices": build_plan(indices, malformed=half, seed=6),
    }
    state = FakePolygonState(
        plans=plans,
        not_entitled={NOT_ENTITLED},
        drop_every=drop_every,
        skip_on_drop=(0, max(1, 120 // step)),  # lose up to two minutes per drop
    )
    published: Counter = Counter()

    def on_bar(bar) -> None:
        published[(bar.symbol, int(bar.ts.timestamp()))] += 1

    result: dict = {"crashes": 0, "crash": ""}
    started = time.monotonic()
    stream_log = logging.getLogger("marketdata.streamer")
    level = stream_log.level
    stream_log.setLevel(logging.CRITICAL)  # thousands of expected warnings
    with FakePolygon(state, truth) as fake:
        config = StreamerConfig(
            url=fake.ws_url,
            api_key=API_KEY,
            symbols=[*STOCKS, NOT_ENTITLED, "SPX"],
            batch=200,
            flush_interval=0.05,
            grace_sec=2.0,
            idle_close_sec=3600,
            backoff_max=0.2,
            backoff_base=0.02,
            backfill_gaps=True,
            heal_delay_sec=0.0,
        )
        with override_settings(
            POLYGON_REST_URL=fake.rest_url,
            POLYGON_API_KEY=API_KEY,
            USE_POLYGON_EQUITY=True,
            TRADIER_MAX_RETRIES=2,
        ):
            sink = StreamSink(
                batch=config.batch,
                grace_sec=config.grace_sec,
                backfill_gaps=True,
                on_bar=on_bar,
                publish_ticks=False,
                heal_delay_sec=0.0,
            )
            service = StreamerService(config, sink=sink)

            async def main() -> None:
                stop = asyncio.Event()
                task = asyncio.ensure_future(service.run(stop))
                deadline = time.monotonic() + timeout
                while not state.finished() and not task.done() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # let the last frames be read
                # The feed ran ~200× faster than the market, the REST repairs (one thread, as
                # live) did not: let them catch up as the real clock would have, before stopping.
                settle = time.monotonic() + max(60.0, 2.0 * minutes)
                while sink._repairs and time.monotonic() < settle:
                    await asyncio.sleep(0.05)
                result["repairs_left_at_stop"] = len(sink._repairs)
                stop.set()
                try:
                    await task
                except Exception as exc:  # a crash is a figure, not a test error
                    result["crashes"] += 1
                    result["crash"] = f"{type(exc).__name__}: {exc}"[:300]

            try:
                asyncio.run(main())
            finally:
                stream_log.setLevel(level)
    stored: Counter = Counter()
    values: dict[tuple[str, int], tuple] = {}
    sources: Counter = Counter()
    provisional = 0
    origin: dict[tuple[str, int], str] = {}
    for bar in Bar.objects.filter(symbol__in=["SPY", "QQQ", "SPX", NOT_ENTITLED]):
        key = (bar.symbol, int(bar.ts.timestamp()))
        stored[key] += 1
        values[key] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        origin[key] = bar.source
        sources[bar.source] += 1
        provisional += bar.provisional
    lost = [k for k in truth if k not in stored]
    doubled_rows = sum(n - 1 for n in stored.values() if n > 1)
    doubled_events = sum(n - 1 for n in published.values() if n > 1)
    incomplete = 0
    partial_examples = []
    for key, bar in truth.items():
        got = values.get(key)
        want = (bar["o"], bar["h"], bar["l"], bar["c"], bar["v"])
        if got and not all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6) for a, b in zip(got, want, strict=True)
        ):
            incomplete += 1
            partial_examples.append(
                f"{key[0]} {datetime.fromtimestamp(key[1], UTC):%H:%M} {origin[key]} {got} {want}"
            )
    dropped = {t for s in service.streams for t in s.dropped}
    result.update(
        {
            "minutes": minutes,
            "symbols": len(STOCKS) + len(INDICES),
            "expected_bars": len(truth),
            "stored_bars": len(stored),
            "bars_lost": len(lost),
            "bars_duplicate": doubled_rows + doubled_events,
            "bars_partial": incomplete,
            "bars_provisional_left": provisional,
            "partial_examples": partial_examples[:5],
            "bars_from_rest": sources.get("rest_backfill", 0),
            "provisional_closed": sink.stats.provisional_closed,
            "bars_healed": sink.stats.bars_healed,
            "gaps_filled": sink.stats.gaps_filled,
            "bars_corrected": sink.stats.bars_corrected,
            "not_entitled_dropped": NOT_ENTITLED in dropped,
            "unexpected_symbols": sorted(k[0] for k in stored if k not in truth)[:5],
            "malformed_frames": state.malformed_sent,
            "disconnects": sum(state.disruptions.values()),
            "disruptions": dict(state.disruptions),
            "connections": sum(state.connections.values()),
            "reconnects": sum(s.reconnects for s in service.streams),
            "skipped_source_frames": state.skipped_frames,
            "rest_requests": sum(fake.rest_requests.values()),
            "flush_failures": sink.stats.flush_failures,
            "late_seconds_beyond_window": sink.stats.late_dropped,
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    return result
