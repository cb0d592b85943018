"""A hostile fake Polygon on 127.0.0.1: a websocket server speaking the real protocol (`/stocks`,
`/indices`: connected → auth → subscribe → arrays mixing status and `A` events) and a REST
server for `/v2/aggs` (the gap back-fill), both fed by one deterministic source of per-second
aggregates.

The websocket keeps a global cursor through the source (as the live market does: what is sent
while a client is away is gone) and, per the plan, drops the connection every `drop_every`
frames (abrupt close, `slow_consumer`, `force_disconnect`, `max_connections`), skipping
some source seconds each time; injects malformed frames; repeats and reorders seconds; and
refuses entitlement for the symbols in `not_entitled` with an `error` status.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

API_KEY = "fake-polygon-key"


def source_seconds(
    tickers: list[str], *, start: int, minutes: int, step: int = 5, seed: int = 11
) -> dict[str, list[dict]]:
    """Per-second `A` events for each ticker: one every `step` seconds from epoch `start`."""
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {}
    for ticker in tickers:
        price = 100.0 + rng.random() * 400
        index = ticker.startswith("I:")
        events = []
        for s in range(start, start + minutes * 60, step):
            o = price
            c = max(1.0, o + rng.uniform(-0.3, 0.3))
            h = max(o, c) + rng.uniform(0, 0.1)
            lo = min(o, c) - rng.uniform(0, 0.1)
            price = c
            event = {
                "ev": "A",
                "sym": ticker,
                "op": round(o, 2),
                "o": round(o, 4),
                "h": round(h, 4),
                "l": round(lo, 4),
                "c": round(c, 4),
                "s": s * 1000,
                "e": (s + 1) * 1000,
            }
            if not index:
                v = rng.randint(100, 5000)
                event.update({"v": v, "av": v * 10, "vw": round((h + lo + c) / 3, 4), "z": 50})
            events.append(event)
        out[ticker] = events
    return out


def truth_bars(seconds: dict[str, list[dict]]) -> dict[tuple[str, int], dict]:
    """The 1-minute bars of the source, computed independently of the service's builder."""
    by_minute: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for ticker, events in seconds.items():
        for e in events:
            s = e["s"] // 1000
            by_minute[(ticker.removeprefix("I:"), s - s % 60)].append(e)
    bars = {}
    for key, events in by_minute.items():
        events.sort(key=lambda e: e["s"])
        bars[key] = {
            "o": events[0]["o"],
            "h": max(e["h"] for e in events),
            "l": min(e["l"] for e in events),
            "c": events[-1]["c"],
            "v": float(sum(e.get("v", 0) for e in events)),
        }
    return bars


MALFORMED = [
    "not json {",
    "",
    "null",
    '"a string"',
    "42",
    "[1, 2, 3]",
    "[null, true]",
    '[{"ev": "A"}]',
    '[{"ev": "A", "sym": "SPY", "s": "soon", "o": 1, "h": 1, "l": 1, "c": 1}]',
    '[{"ev": "A", "sym": "SPY", "s": 1e400, "o": 1, "h": 1, "l": 1, "c": 1}]',
    '[{"ev": "A", "sym": "SPY", "s": -1e300, "o": 1, "h": 1, "l": 1, "c": 1}]',
    '[{"ev": "A", "sym": "SPY", "s": NaN, "o": 1, "h": 1, "l": 1, "c": 1}]',
    '[{"ev": "A", "sym": "SPY", "s": 1, "o": NaN, "h": Infinity, "l": -Infinity, "c": 1}]',
    '[{"ev": "A", "sym": "SPY", "s": 1, "o": 5, "h": 1, "l": 9, "c": 1}]',
    '[{"ev": "A", "sym": "SPY", "s": 1, "o": "x", "h": [], "l": {}, "c": null}]',
    '[{"ev": "A", "sym": {"x": 1}, "s": 1, "o": 1, "h": 1, "l": 1, "c": 1, "v": "lots"}]',
    '[{"ev": "status"}]',
    '[{"ev": "status", "status": 42, "message": ["x"]}]',
    '[{"ev": ["A"]}]',
    '{"ev": "Q", "sym": "SPY"}',
    "[" * 200_000 + "]" * 200_000,
    '[{"ev": "A", "sym": "SPY"' + ', "x": 1' * 5000 + "}]",
    b"\xff\xfe\x00binary",
]


@dataclass
class StreamPlan:
    frames: list[str]
    last_second: int
    tail_frames: int = 0
    malformed: int = 0  # junk frames to spread over the stream, all of them delivered


def build_plan(
    seconds: dict[str, list[dict]],
    *,
    malformed: int,
    seed: int = 5,
    duplicate_rate: float = 0.1,
    reorder_rate: float = 0.2,
) -> StreamPlan:
    """Frames in time order, each second's events for all tickers in one array (sometimes
    reordered, sometimes with an earlier second repeated); `malformed` junk frames are spread
    in at send time."""
    rng = random.Random(seed)
    by_second: dict[int, list[dict]] = defaultdict(list)
    for events in seconds.values():
        for e in events:
            by_second[e["s"]].append(e)
    frames: list[str] = []
    ordered = sorted(by_second)
    previous: list[dict] = []
    for s in ordered:
        events = list(by_second[s])
        if previous and rng.random() < duplicate_rate:
            events += rng.sample(previous, k=1)  # a repeat of the previous second
        if rng.random() < reorder_rate:
            rng.shuffle(events)
        if rng.random() < 0.1:
            events.insert(0, {"ev": "status", "status": "success", "message": "heartbeat"})
        frames.append(json.dumps(events))
        previous = by_second[s]
    tail = sum(1 for s in ordered if s >= ordered[-1] - 120_000)
    return StreamPlan(
        frames=frames, last_second=ordered[-1] // 1000, tail_frames=tail, malformed=malformed
    )


@dataclass
class FakePolygonState:
    plans: dict[str, StreamPlan]  # cluster → frames
    not_entitled: set[str] = field(default_factory=set)
    drop_every: int = 40
    skip_on_drop: tuple[int, int] = (0, 40)  # source frames lost while the client is away
    seed: int = 3
    cursor: dict[str, int] = field(default_factory=dict)
    disruptions: Counter = field(default_factory=Counter)
    connections: Counter = field(default_factory=Counter)
    malformed_sent: int = 0
    junk_sent: Counter = field(default_factory=Counter)
    skipped_frames: int = 0
    # the soak: a market paced at `frame_interval_sec` per source frame (0 = a firehose), and
    # `on_frame(cluster, events)` called after each source frame is sent (the driver moves the
    # broker's prices and the market clock with it)
    frame_interval_sec: float = 0.0
    on_frame: object = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.done = {cluster: asyncio.Event() for cluster in self.plans}
        for cluster in self.plans:
            self.cursor.setdefault(cluster, 0)

    def finished(self) -> bool:
        return all(self.cursor[c] >= len(p.frames) for c, p in self.plans.items())


def _status(status: str, message: str) -> str:
    return json.dumps([{"ev": "status", "status": status, "message": message}])


async def _serve_client(state: FakePolygonState, ws) -> None:
    cluster = ws.request.path.strip("/")
    if cluster not in state.plans:
        await ws.close(1008, "unknown cluster")
        return
    state.connections[cluster] += 1
    await ws.send(_status("connected", "Connected Successfully"))
    try:
        auth = json.loads(await ws.recv())
        if auth.get("action") != "auth" or auth.get("params") != API_KEY:
            await ws.send(_status("auth_failed", "authentication failed"))
            await ws.close()
            return
        await ws.send(_status("auth_success", "authenticated"))
        sub = json.loads(await ws.recv())
        params = str(sub.get("params", ""))
        for item in params.split(","):
            ticker = item.split(".", 1)[-1]
            if ticker in state.not_entitled:
                await ws.send(
                    _status("error", f"Your plan doesn't include websocket access for {item}")
                )
            else:
                await ws.send(_status("success", f"subscribed to: {item}"))
        await _stream(state, cluster, ws)
    except (ConnectionClosed, ValueError):
        return


async def _stream(state: FakePolygonState, cluster: str, ws) -> None:
    plan = state.plans[cluster]
    sent = 0
    per_frame = plan.malformed / max(1, len(plan.frames))
    while state.cursor[cluster] < len(plan.frames):
        frame = plan.frames[state.cursor[cluster]]
        state.cursor[cluster] += 1
        await ws.send(frame)
        if state.on_frame is not None:
            state.on_frame(cluster, frame)
        if state.frame_interval_sec:
            await asyncio.sleep(state.frame_interval_sec)
        due = min(plan.malformed, int(state.cursor[cluster] * per_frame + 0.5))
        while state.junk_sent[cluster] < due:
            await ws.send(MALFORMED[state.junk_sent[cluster] % len(MALFORMED)])
            state.junk_sent[cluster] += 1
            state.malformed_sent += 1
        sent += 1
        if sent % 8 == 0:
            await asyncio.sleep(0)  # let the client read; a real feed is not a firehose
        if sent >= state.drop_every:
            await _disrupt(state, cluster, ws)
            return
    while state.junk_sent[cluster] < plan.malformed:  # what skipped frames did not carry
        await ws.send(MALFORMED[state.junk_sent[cluster] % len(MALFORMED)])
        state.junk_sent[cluster] += 1
        state.malformed_sent += 1
    state.done[cluster].set()
    await ws.wait_closed()


async def _disrupt(state: FakePolygonState, cluster: str, ws) -> None:
    kind = state.rng.choice(["abrupt", "slow_consumer", "force_disconnect", "max_connections"])
    state.disruptions[kind] += 1
    lost = state.rng.randint(*state.skip_on_drop)
    plan = state.plans[cluster]
    # Never skip into the tail: a gap is only visible once a later bar arrives (an outage at
    # the very end of a session is the nightly back-fill's job, not the stream's).
    limit = max(state.cursor[cluster], len(plan.frames) - plan.tail_frames)
    lost = max(0, min(lost, limit - state.cursor[cluster]))
    state.cursor[cluster] += lost
    state.skipped_frames += lost
    if kind == "abrupt":
        ws.transport.abort()
        return
    await ws.send(_status(kind, f"{kind}: closing"))
    await ws.close(1008 if kind != "max_connections" else 1013, kind)


class _AggsHandler(BaseHTTPRequestHandler):
    truth: dict[tuple[str, int], dict]
    requests: Counter

    def log_message(self, format, *args):  # noqa: A002
        return

    def do_GET(self):  # noqa: N802
        url = urlparse(self.path)
        m = re.fullmatch(r"/v2/aggs/ticker/([^/]+)/range/1/minute/(\d+)/(\d+)", url.path)
        if not m or self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._send(404 if not m else 401, {"status": "ERROR", "error": "not found"})
            return
        ticker, start_ms, end_ms = m.group(1), int(m.group(2)), int(m.group(3))
        symbol = ticker.removeprefix("I:")
        self.requests[symbol] += 1
        rows = []
        for (sym, minute), bar in sorted(self.truth.items(), key=lambda kv: kv[0][1]):
            if sym == symbol and start_ms <= minute * 1000 <= end_ms:
                row = {k: bar[k] for k in ("o", "h", "l", "c")}
                row.update({"t": minute * 1000, "n": 12})
                if not ticker.startswith("I:"):
                    row.update({"v": bar["v"], "vw": round((bar["h"] + bar["l"]) / 2, 4)})
                rows.append(row)
        self._send(
            200,
            {
                "ticker": ticker,
                "queryCount": len(rows),
                "resultsCount": len(rows),
                "adjusted": True,
                "results": rows,
                "status": "OK",
                "request_id": "fake",
                "count": len(rows),
            },
        )

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakePolygon:
    """Websocket (`ws_url`) and REST (`rest_url`) fakes running in a background thread."""

    def __init__(self, state: FakePolygonState, truth: dict[tuple[str, int], dict]) -> None:
        self.state = state
        self.rest_requests: Counter = Counter()
        handler = type("Aggs", (_AggsHandler,), {"truth": truth, "requests": self.rest_requests})
        self.rest = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.rest.daemon_threads = True
        self._rest_thread = threading.Thread(target=self.rest.serve_forever, daemon=True)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.ws_port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.state.done = {cluster: asyncio.Event() for cluster in self.state.plans}
        async with serve(
            lambda ws: _serve_client(self.state, ws), "127.0.0.1", 0, max_size=None
        ) as server:
            self.ws_port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/stocks"

    @property
    def rest_url(self) -> str:
        host, port = self.rest.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakePolygon:
        self._rest_thread.start()
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.rest.shutdown()
        self.rest.server_close()

    def __enter__(self) -> FakePolygon:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
