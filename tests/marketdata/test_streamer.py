"""The streamer against a local websocket server speaking Polygon's protocol. Bars stored and
announced are compared with bars computed here from the fake's source events."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from autotrader_site.heartbeat import heartbeat_read
from autotrader_site.metrics import STREAM_MESSAGES_TOTAL
from marketdata.models import Bar, Tick
from marketdata.streamer.client import StreamAuthError
from marketdata.streamer.service import StreamerConfig, StreamerService, cluster_url
from marketdata.streamer.sink import StreamSink
from marketdata.types import BarData
from tests.marketdata.fake_polygon_ws import FakePolygonServer, Fault, status

START = int(datetime(2025, 9, 19, 13, 30, tzinfo=UTC).timestamp())  # 09:30 New York


def source_events(symbols: list[str], minutes: int, *, seed: int, skip_minute=None) -> list[dict]:
    """Per-second aggregates as Polygon sends them (indices without volume)."""
    rng = random.Random(seed)
    events = []
    price = {s: 100.0 + 50 * i for i, s in enumerate(symbols)}
    for sec in range(minutes * 60):
        for sym in symbols:
            if skip_minute is not None and sec // 60 == skip_minute[1] and sym == skip_minute[0]:
                continue
            o = price[sym]
            c = round(o + rng.uniform(-0.2, 0.2), 2)
            h = round(max(o, c) + rng.uniform(0, 0.1), 2)
            lo = round(min(o, c) - rng.uniform(0, 0.1), 2)
            price[sym] = c
            s_ms = (START + sec) * 1000
            event = {
                "ev": "A",
                "sym": sym,
                "op": 100.0,
                "o": o,
                "c": c,
                "h": h,
                "l": lo,
                "s": s_ms,
                "e": s_ms + 1000,
            }
            if not sym.startswith("I:"):
                v = rng.randint(1, 500)
                event.update(
                    {
                        "v": v,
                        "av": 1000 + sec,
                        "vw": round((o + c) / 2, 4),
                        "a": 100.1,
                        "z": rng.randint(1, 90),
                    }
                )
            events.append(event)
    return events


def expected_bars(events: list[dict]) -> dict[tuple[str, datetime], tuple]:
    """(symbol, minute) → (o, h, l, c, v, vwap) from the unique seconds."""
    unique = {(e["sym"], e["s"]): e for e in events}
    minutes: dict[tuple[str, int], list[dict]] = {}
    for (sym, s_ms), e in unique.items():
        minutes.setdefault((sym.removeprefix("I:"), s_ms // 60000), []).append(e)
    out = {}
    for (sym, minute), evs in minutes.items():
        evs.sort(key=lambda e: e["s"])
        v = sum(e.get("v", 0) for e in evs)
        vwap = sum(e["vw"] * e["v"] for e in evs) / v if v else None
        out[(sym, datetime.fromtimestamp(minute * 60, tz=UTC))] = (
            evs[0]["o"],
            max(e["h"] for e in evs),
            min(e["l"] for e in evs),
            evs[-1]["c"],
            v,
            vwap,
        )
    return out


def shuffle_for_the_wire(events: list[dict], *, seed: int) -> list[dict]:
    """Out-of-order within a couple of seconds, some duplicates, some seconds arriving after
    their minute has closed."""
    rng = random.Random(seed)
    out = list(events)
    for i in range(0, len(out) - 4, 4):  # local reordering
        block = out[i : i + 4]
        rng.shuffle(block)
        out[i : i + 4] = block
    for _ in range(25):  # duplicates, some near, some far
        e = rng.choice(events)
        out.insert(min(len(out), out.index(e) + rng.choice([1, 7, 150])), dict(e))
    for _ in range(6):  # late seconds: moved ~75 s later, past their minute's close
        position = rng.randrange(0, len(out) - 200)
        out.insert(position + 150, out.pop(position))
    return out


def frames_of(events: list[dict], *, size: int = 3, statuses_every: int = 7) -> list:
    frames: list = []
    for n, i in enumerate(range(0, len(events), size)):
        frame = events[i : i + size]
        if n % statuses_every == 3:  # status news mixed into a data array
            frame = [*frame[:1], status("success", "subscribed to: A.SPY"), *frame[1:]]
        frames.append(frame)
    return frames


def stored_bars(symbol: str) -> dict[tuple[str, datetime], tuple]:
    return {
        (b.symbol, b.ts): (b.open, b.high, b.low, b.close, b.volume, b.vwap)
        for b in Bar.objects.filter(symbol=symbol, source="stream")
    }


def assert_same_bars(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, values in want.items():
        assert got[key][:5] == pytest.approx(values[:5]), key
        if values[5] is None:
            assert got[key][5] is None
        else:
            assert got[key][5] == pytest.approx(values[5]), key


def run_streamer(server, config, sink, expected_keys, *, timeout: float = 30.0):
    """Run the service until the server has sent everything and the sink has every
    (symbol, second) the server was asked to deliver; then stop."""
    seen: set[tuple[str, int]] = set()
    original_add = sink.add

    async def add(aggs):
        seen.update((a.symbol, a.start) for a in aggs)
        await original_add(aggs)

    sink.add = add
    service = StreamerService(config, sink=sink)

    async def main():
        stop = asyncio.Event()

        async def watch():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while loop.time() < deadline:
                if server.all_done({s.cluster for s in service.streams}) and expected_keys <= seen:
                    break
                await asyncio.sleep(0.02)
            stop.set()

        watcher = asyncio.ensure_future(watch())
        try:
            await service.run(stop)
        finally:
            watcher.cancel()

    asyncio.run(main())
    return service, seen


def config_for(server: FakePolygonServer, symbols: list[str], **kw) -> StreamerConfig:
    defaults = dict(
        url=server.url,
        api_key="good-key",
        symbols=symbols,
        batch=50,
        flush_interval=0.05,
        grace_sec=2.0,
        idle_close_sec=600,
        backoff_base=0.01,
        backoff_max=0.05,
        backfill_gaps=False,
    )
    defaults.update(kw)
    return StreamerConfig(**defaults)


@pytest.mark.django_db(transaction=True)
def test_stream_survives_faults_and_stores_every_bar_once():
    stocks = source_events(["SPY", "QQQ"], 6, seed=1)
    indices = source_events(["I:SPX", "I:NDX"], 6, seed=2)
    stock_frames = frames_of(shuffle_for_the_wire(stocks, seed=3))
    stock_frames.insert(20, "{this is not json")
    stock_frames.insert(60, json.dumps({"ev": "A", "sym": "SPY"}))  # lacks fields
    index_frames = frames_of(shuffle_for_the_wire(indices, seed=4))
    server = FakePolygonServer(
        frames={"stocks": stock_frames, "indices": index_frames},
        not_entitled={"I:NDX"},
        faults=[
            Fault("stocks", conn=1, after=137, rewind=9),  # dropped mid-batch, resent
            Fault("indices", conn=1, after=90, status="slow_consumer", rewind=4),
            Fault("stocks", conn=2, after=60, status="force_disconnect"),
        ],
    ).start()
    malformed_before = STREAM_MESSAGES_TOTAL.labels(cluster="stocks", kind="malformed")._value.get()
    published: list[BarData] = []
    try:
        sink = StreamSink(
            batch=50,
            grace_sec=2.0,
            backfill_gaps=False,
            on_bar=published.append,
            publish_ticks=True,
        )
        want_keys = {(e["sym"], e["s"] // 1000) for e in stocks} | {
            (e["sym"].removeprefix("I:"), e["s"] // 1000) for e in indices if e["sym"] == "I:SPX"
        }
        service, _ = run_streamer(
            server, config_for(server, ["SPY", "QQQ", "SPX", "NDX"]), sink, want_keys
        )
    finally:
        server.stop()

    want = expected_bars(stocks + [e for e in indices if e["sym"] == "I:SPX"])
    for symbol in ("SPY", "QQQ", "SPX"):
        assert_same_bars(stored_bars(symbol), {k: v for k, v in want.items() if k[0] == symbol})
    assert Bar.objects.filter(symbol="NDX").count() == 0  # refused symbol dropped...
    indices_stream = next(s for s in service.streams if s.cluster == "indices")
    assert indices_stream.tickers == ["I:SPX"] and "I:NDX" in indices_stream.dropped
    index_subs = [params for cluster, params in server.subscriptions if cluster == "indices"]
    assert index_subs == ["A.I:SPX,A.I:NDX", "A.I:SPX"]  # not asked for again after reconnect
    # ...and the rest kept streaming across every reconnect
    assert server.connections == {"stocks": 3, "indices": 2}
    assert service.errors == []
    assert sink.stats.bars_corrected > 0  # late seconds rebuilt their (closed) minute
    # one bar-close announcement per (symbol, minute): nothing doubled, nothing missing
    keys = [(b.symbol, b.ts) for b in published]
    assert len(keys) == len(set(keys)) == len(want)
    # one tick per unique second
    assert Tick.objects.count() == len(want_keys)
    spx_tick = Tick.objects.filter(symbol="SPX").first()
    assert spx_tick.volume == 0 and spx_tick.vwap is None
    spy_tick = Tick.objects.filter(symbol="SPY").order_by("ts").first()
    first_spy = min((e for e in stocks if e["sym"] == "SPY"), key=lambda e: e["s"])
    assert spy_tick.avg_trade_size == first_spy["z"]
    assert (
        STREAM_MESSAGES_TOTAL.labels(cluster="stocks", kind="malformed")._value.get()
        == malformed_before + 1
    )


@pytest.mark.django_db(transaction=True)
def test_auth_failed_stops_with_clear_error_and_no_retry_loop():
    server = FakePolygonServer(key="right", frames={"stocks": []}).start()
    try:
        config = config_for(server, ["SPY", "QQQ"], api_key="wrong")
        service = StreamerService(config, sink=StreamSink(backfill_gaps=False))
        with pytest.raises(StreamAuthError, match="refused the key"):
            asyncio.run(service.run())
    finally:
        server.stop()
    assert server.auth_attempts == 1
    assert service.streams[0].reconnects == 0


@pytest.mark.django_db(transaction=True)
def test_max_connections_backs_off_then_streams():
    stocks = source_events(["SPY"], 2, seed=5)
    server = FakePolygonServer(frames={"stocks": frames_of(stocks)}, max_connections_first=True)
    server.start()
    try:
        sink = StreamSink(backfill_gaps=False, on_bar=lambda bar: None)
        service, _ = run_streamer(
            server, config_for(server, ["SPY"]), sink, {("SPY", e["s"] // 1000) for e in stocks}
        )
    finally:
        server.stop()
    stream = service.streams[0]
    assert stream.reconnects >= 1 and 0 <= stream.waits[0] <= 0.05
    assert_same_bars(stored_bars("SPY"), expected_bars(stocks))


@pytest.mark.django_db(transaction=True)
def test_gap_is_back_filled_and_partial_first_minute_healed_from_rest():
    """Minute 2 is never streamed (a gap); minute 0 is the first after connecting, so its
    earlier seconds may be missing (provisional). Both end as the provider's bar, one row per
    minute; the stream's own complete minutes stay as streamed."""
    events = source_events(["SPY"], 5, seed=6, skip_minute=("SPY", 2))
    server = FakePolygonServer(frames={"stocks": frames_of(events)}).start()
    minute = lambda m: datetime.fromtimestamp(START + 60 * m, tz=UTC)  # noqa: E731
    asked = []

    def rest_fetch(symbol, start, end):  # the provider's bar of each minute asked for
        asked.append((symbol, start, end))
        out, at = [], start
        while at <= end:
            out.append(BarData(symbol, at, 1.0, 2.0, 0.5, 1.5, 900.0, 1.2, 7, source="polygon"))
            at += timedelta(minutes=1)
        return out

    published = []
    try:
        sink = StreamSink(
            backfill_gaps=True, rest_fetch=rest_fetch, on_bar=published.append, heal_delay_sec=0
        )
        run_streamer(
            server,
            config_for(server, ["SPY"], backfill_gaps=True),
            sink,
            {("SPY", e["s"] // 1000) for e in events},
        )
    finally:
        server.stop()
    assert ("SPY", minute(2), minute(2).replace(second=59)) in asked  # the gap
    assert ("SPY", minute(0), minute(0).replace(second=59)) in asked  # the provisional minute
    rows = list(Bar.objects.filter(symbol="SPY").order_by("ts"))
    assert [r.ts for r in rows] == [minute(m) for m in range(5)]  # one row per minute
    by_ts = {r.ts: r for r in rows}
    for m in (0, 2):
        healed = by_ts[minute(m)]
        assert (healed.source, healed.close, healed.volume, healed.trades) == (
            "rest_backfill",
            1.5,
            900,
            7,
        )
        assert healed.provisional is False
    want = expected_bars(events)
    for m in (1, 3):
        row = by_ts[minute(m)]
        assert row.source == "stream" and row.provisional is False
        assert row.close == want[("SPY", minute(m))][3]
    assert published[0].ts == minute(0) and published[0].provisional is True  # told, not held
    assert [b.ts for b in published if b.provisional] == [minute(0)], published
    assert sink.stats.gaps_filled == 1 and sink.stats.bars_healed >= 1


@pytest.mark.django_db(transaction=True)
def test_run_streamer_refused_key_says_so_once_and_stops(settings, tmp_path, capsys):
    server = FakePolygonServer(key="right", frames={"indices": []}).start()
    settings.POLYGON_WS_URL = server.url
    settings.POLYGON_WS_KEY = "wrong"
    settings.STREAM_GAP_BACKFILL = False
    settings.HEARTBEAT_DIR = tmp_path
    try:
        call_command("run_streamer", "--symbols", "SPX")  # returns: nothing to retry
    finally:
        server.stop()
    assert server.connections == {"indices": 1}
    assert "refused the key" in capsys.readouterr().err
    beat = heartbeat_read("streamer", directory=tmp_path)
    assert beat["state"] == "disabled" and "refused the key" in beat["reason"]


def test_cluster_url_replaces_the_configured_cluster():
    assert (
        cluster_url("wss://socket.polygon.io/options", "stocks") == "wss://socket.polygon.io/stocks"
    )
    assert cluster_url("ws://127.0.0.1:9/", "indices") == "ws://127.0.0.1:9/indices"


@pytest.mark.django_db(transaction=True)
def test_sink_announces_a_minute_at_its_59_and_stores_the_late_58_as_a_correction():
    from marketdata.bar_builder import SecondAgg

    def second(k: int, high: float) -> SecondAgg:
        return SecondAgg("SPY", START + k, 100.0 + k, high, 99.0, 100.5 + k, 10.0, 100.0)

    on_time = [second(k, 101.0 + k) for k in range(60) if k != 58]
    late = second(58, 500.0)  # the minute's high, arriving after :59
    published: list[BarData] = []
    sink = StreamSink(backfill_gaps=False, on_bar=published.append, publish_ticks=False)

    async def feed():
        await sink.add(on_time)
        await sink.flush()
        announced = list(published)
        await sink.add([late])
        await sink.flush()
        await sink.aclose()
        return announced

    announced = asyncio.run(feed())
    minute = datetime.fromtimestamp(START, tz=UTC)
    # announced once, at the :59 second, before anything of the next minute was seen
    assert [(b.symbol, b.ts) for b in announced] == [("SPY", minute)]
    assert announced[0].high == 101.0 + 59 and announced[0].volume == 590.0
    assert [(b.symbol, b.ts) for b in published] == [("SPY", minute)]  # no second announcement
    (row,) = Bar.objects.filter(symbol="SPY", ts=minute)
    stored = (row.open, row.high, row.low, row.close, row.volume)
    assert stored == (100.0, 500.0, 99.0, 159.5, 600.0)
    assert sink.stats.bars_corrected == 1
