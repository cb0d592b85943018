"""Universe benchmark on the full stack: a fake Polygon feed of N symbols' per-second aggregates
in real time -> `manage.py run_streamer` -> Redis -> Celery workers running the bar-close task;
time from each minute's end to the LAST symbol's decision, with 1 and then 2 workers.

Everything is private to the run: a scratch PostgreSQL database next to DATABASE_URL's (history
of one session per symbol seeded first, dropped at the end), a redis-server of its own on a free
port (broker and channel layer), the feed server in this process. A probe loaded into the
workers (benchmarks/universe_probe.py) records when each bar-close task finished.

Minute m of a phase's feed ends at wall time `start + 60 (m + 1)`: the streamer closes it when the
aggregates of the next seconds arrive and the grace (--grace, POLYGON_WS_BAR_GRACE_SEC) has
passed, stores it, publishes it; the decision of a symbol is its task's end. Each phase is its own
real-time segment of the feed, starting with an empty queue (the feed pauses until the previous
phase's decisions are all made), and begins with --warmup minutes that are not counted.

Also, before the real-time part, the streamer's own capacity: --burst frames of N aggregates
sent as fast as the server can, timed until the streamer has stored every tick, against a bare
websocket reader (a subprocess: `websockets` + orjson, counting the events) fed the same frames.

Last line: {"name": "universe", "symbols", "workers": 2, "p50_s", "p99_s", "p50_s_1_worker",
"p99_s_1_worker", "ratio_1_to_2_workers" (p50 with 1 worker / p50 with 2), "minutes_per_phase",
"streamer_msgs_per_s", "bare_msgs_per_s", ...}. Goal p99_s <= 2.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/autotrader .venv/bin/python \\
        benchmarks/bench_universe.py --symbols 500 --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import bench_database_url, child_env, database_recreate  # noqa: E402
from trading.bar_routing import bar_queues  # noqa: E402  (pure; no Django set-up needed)

ET = ZoneInfo("America/New_York")
HISTORY_DAY = date(2026, 3, 5)
FEED_DAY = date(2026, 3, 6)  # a Friday; the feed starts at 10:00 ET
BURST_DAY = date(2026, 2, 27)
PROBE_KEY = "universe:done"


def log(message: str) -> None:
    print(f"[universe {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def symbols_of(n: int) -> list[str]:
    return [f"U{i:03d}" for i in range(n)]


# --- setup: history ------------------------------------------------------------------------------
def seed_history(n: int) -> None:
    """One session of 1-minute bars per symbol before the feed day, with COPY (runs in a child
    with the bench DB). One synthetic session, scaled per symbol: the shape matters to the
    features, not that every symbol differs."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
    django.setup()
    from django.db import connection

    from marketdata.replay import synthetic_sessions

    template = synthetic_sessions(symbol="U", sessions=1, seed=100, end=HISTORY_DAY)
    closes = {}
    columns = "symbol, ts, open, high, low, close, volume, source"
    with connection.cursor() as cursor:
        with cursor.connection.cursor().copy(f"COPY bars_1m ({columns}) FROM STDIN") as copy:
            for i, symbol in enumerate(symbols_of(n)):
                scale = 0.2 + i / max(1, n) * 4
                for bar in template:
                    copy.write_row(
                        (
                            symbol,
                            bar.ts,
                            round(bar.open * scale, 4),
                            round(bar.high * scale, 4),
                            round(bar.low * scale, 4),
                            round(bar.close * scale, 4),
                            bar.volume,
                            "replay",
                        )
                    )
                closes[symbol] = round(template[-1].close * scale, 4)
        cursor.execute("ANALYZE bars_1m")
    print(json.dumps(closes))


# --- the feed ------------------------------------------------------------------------------------
class Feed:
    """A Polygon-speaking websocket server: auth, subscribe, then frames of `A` events.

    /stocks (the streamer): the burst first (when set), then one frame per wall second of the
    real-time feed. /bare: the burst only, then close."""

    def __init__(self, symbols: list[str], closes: dict[str, float]) -> None:
        self.symbols = symbols
        self.price = dict(closes)
        self.burst: list[str] = []
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.streamer_ready = threading.Event()
        self.burst_sent_at: float | None = None
        self.segment: tuple[float, int, int] | None = None  # (wall start, seconds, first second)
        self._go = threading.Event()
        self._segment_go = threading.Event()
        self.segment_done = threading.Event()
        self._closing = False

    def frame(self, second_start: datetime) -> str:
        import orjson

        start_ms = int(second_start.timestamp() * 1000)
        events = []
        for i, symbol in enumerate(self.symbols):
            last = self.price[symbol]
            step = ((start_ms // 1000 + i) % 7 - 3) * 0.001
            close = round(last + step, 4)
            high, low = max(last, close) + 0.01, min(last, close) - 0.01
            self.price[symbol] = close
            events.append(
                {
                    "ev": "A",
                    "sym": symbol,
                    "v": 100 + i % 50,
                    "av": 10_000,
                    "op": last,
                    "vw": round((high + low) / 2, 4),
                    "o": last,
                    "c": close,
                    "h": round(high, 4),
                    "l": round(low, 4),
                    "a": close,
                    "z": 10,
                    "s": start_ms,
                    "e": start_ms + 1000,
                }
            )
        return orjson.dumps(events).decode()

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        from websockets.asyncio.server import serve

        async def main():
            async with serve(self._handler, "127.0.0.1", self.port, max_size=None):
                await asyncio.Future()

        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(main())

    async def _handler(self, ws) -> None:
        path = ws.request.path
        await ws.send(json.dumps([{"ev": "status", "status": "connected", "message": "hi"}]))
        if path.endswith("/bare"):
            for frame in self.burst:
                await ws.send(frame)
            await ws.close()
            return
        async for raw in ws:
            message = json.loads(raw)
            if message.get("action") == "auth":
                status = {"ev": "status", "status": "auth_success", "message": "authenticated"}
                await ws.send(json.dumps([status]))
            elif message.get("action") == "subscribe":
                subscribed = {"ev": "status", "status": "success", "message": "subscribed"}
                await ws.send(json.dumps([subscribed]))
                break
        self.streamer_ready.set()
        await asyncio.get_running_loop().run_in_executor(None, self._go.wait)
        if self._closing:
            return
        if self.burst:
            self.burst_sent_at = time.time()
            for frame in self.burst:
                await ws.send(frame)
        feed_t0 = datetime.combine(FEED_DAY, datetime.min.time().replace(hour=10), ET)
        while True:  # real-time segments, one per phase; the connection stays open between
            await asyncio.get_running_loop().run_in_executor(None, self._segment_go.wait)
            self._segment_go.clear()
            if self._closing:
                return
            start, seconds, first = self.segment
            for k in range(seconds):
                await asyncio.sleep(max(0.0, start + k + 1 - time.time()))  # the second ended
                await ws.send(self.frame(feed_t0 + timedelta(seconds=first + k)))
            self.segment_done.set()

    def close(self) -> None:
        """Release the handler's waits. They run in the loop's default executor, whose
        threads are not daemons: Python joins them at exit, so a wait left pending kept the
        benchmark alive after its JSON line (it hung there)."""
        self._closing = True
        self._go.set()
        self._segment_go.set()

    def release_burst(self) -> None:
        self._go.set()

    def start_segment(self, seconds: int, first: int) -> float:
        """Send feed seconds first .. first+seconds-1 in real time from the next wall second;
        returns the wall time that feed second `first` starts at."""
        start = float(int(time.time()) + 2)
        self.segment = (start, seconds, first)
        self.segment_done.clear()
        self._segment_go.set()
        return start


# --- processes -----------------------------------------------------------------------------------
def redis_start(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def stop(process: subprocess.Popen | None, *, timeout: float = 30) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


SHARDS = 2  # BAR_CLOSE_SHARDS of the run: as many shards as the largest phase has workers
SHARD_QUEUES = bar_queues(SHARDS)


def worker_start(env: dict, name: str, queues: list[str]) -> subprocess.Popen:
    """A worker consuming the default queue and the given bar shard queues."""
    celery = str(Path(sys.executable).parent / "celery")
    return subprocess.Popen(
        [
            celery,
            "-A",
            "autotrader_site",
            "worker",
            "-l",
            "warning",
            "--concurrency",
            "1",
            "-n",
            f"{name}@%h",
            "--include",
            "benchmarks.universe_probe",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            ",".join(["celery", *queues]),
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


def ticks_stored(env: dict, since: datetime) -> int:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        return conn.execute("SELECT count(*) FROM ticks WHERE ts >= %s", [since]).fetchone()[0]


def signal_outcomes(env: dict) -> dict[str, int]:
    """Signals the run's bars fired, by outcome (how much of the figure is decisions)."""
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        rows = conn.execute("SELECT outcome, count(*) FROM strategies_signal GROUP BY outcome")
        return dict(rows.fetchall())


def bare_reader(url: str, expected_frames: int) -> None:
    """Child: read the burst, parse every frame with orjson, print events and seconds."""
    import orjson
    from websockets.sync.client import connect

    events = frames = 0
    with connect(url, max_size=None) as ws:
        ws.recv()  # connected
        started = None
        while frames < expected_frames:
            raw = ws.recv()
            if started is None:
                started = time.perf_counter()
            events += sum(1 for e in orjson.loads(raw) if e.get("ev") == "A")
            frames += 1
    print(json.dumps({"events": events, "seconds": time.perf_counter() - started}))


# --- the measurement -----------------------------------------------------------------------------
def decisions(redis_url: str, *, with_start: bool = False) -> dict[str, list[tuple]]:
    """Bar ts -> [(symbol, wall time the bar-close task ended)] from the workers' probe, with
    the wall time that task started as a third item when `with_start`."""
    import redis

    done: dict[str, list[tuple]] = {}
    for raw in redis.Redis.from_url(redis_url).lrange(PROBE_KEY, 0, -1):
        symbol, ts, at, _state, started = json.loads(raw)
        done.setdefault(ts, []).append((symbol, at, started) if with_start else (symbol, at))
    return done


def minute_ts(m: int) -> str:
    feed_t0 = datetime.combine(FEED_DAY, datetime.min.time().replace(hour=10), ET)
    return (feed_t0 + timedelta(minutes=m)).astimezone(UTC).isoformat()


def drained(redis_url: str, minutes: range, n: int, *, timeout: float) -> float:
    """Wait until every symbol of `minutes` is decided; returns the seconds waited."""
    started = time.time()
    while time.time() - started < timeout:
        done = decisions(redis_url)
        if all(len({s for s, _ in done.get(minute_ts(m), [])}) >= n for m in minutes):
            break
        time.sleep(1)
    return time.time() - started


def latencies(redis_url: str, segment_start: float, first_second: int, minutes: range, n: int):
    """Per minute: the last decision's wall time minus the wall time the minute ended."""

    done = decisions(redis_url, with_start=True)
    out, missing, repeated = [], 0, 0
    taken, handling = [], []  # per minute: when the last task started; the longest task
    for m in minutes:
        entries = done.get(minute_ts(m), [])
        symbols = {symbol for symbol, _, _ in entries}
        missing += n - len(symbols)
        repeated += len(entries) - len(symbols)  # a bar-close task run twice for one bar
        if entries:
            ended = segment_start + 60 * (m + 1) - first_second
            out.append(max(at for _, at, _ in entries) - ended)
            starts = [s for _, _, s in entries if s is not None]
            if starts:
                taken.append(max(starts) - ended)
                handling.append(max(at - s for _, at, s in entries if s is not None))
    out.sort()
    if not out:
        return {
            "p50_s": None,
            "p99_s": None,
            "minutes": 0,
            "missing_decisions": missing,
            "repeated_decisions": repeated,
        }
    return {
        "p50_s": round(statistics.median(out), 2),
        "p99_s": round(out[max(0, int(len(out) * 0.99 + 0.5) - 1)], 2),
        "max_s": round(out[-1], 2),
        # the minute's end -> the last batch taken by a worker (streamer close, write and
        # publish, queue), and the longest batch task of the minute (p50 over the minutes)
        "taken_p50_s": round(statistics.median(taken), 2) if taken else None,
        "task_p50_s": round(statistics.median(handling), 2) if handling else None,
        "minutes": len(out),
        "missing_decisions": missing,
        "repeated_decisions": repeated,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--minutes", type=int, default=10, help="counted minutes per phase")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted minutes per phase")
    parser.add_argument("--grace", type=float, default=0.5, help="POLYGON_WS_BAR_GRACE_SEC")
    parser.add_argument("--burst", type=int, default=120, help="frames for the capacity run")
    parser.add_argument("--drain", type=float, default=600, help="max wait for a phase's backlog")
    parser.add_argument("--db-name", default="autotrader_bench_universe")
    parser.add_argument(
        "--worker-counts",
        default="1,2",
        help="phases to run, by worker count (a quick before/after of one phase: 1)",
    )
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")) or not shutil.which(
        "redis-server"
    ):
        print(json.dumps({"name": "universe", "skipped": "needs DATABASE_URL and redis-server"}))
        return 0

    symbols = symbols_of(args.symbols)
    db_url = bench_database_url(base_url, args.db_name)
    database_recreate(base_url, args.db_name)
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    redis_process = redis_start(redis_port)
    env = child_env(db_url)
    env.pop("DB_POOL_MAX_SIZE", None)
    env.update(
        REDIS_URL=redis_url,
        CELERY_TASK_ALWAYS_EAGER="0",
        POLYGON_WS_KEY="bench-key",
        POLYGON_WS_BAR_GRACE_SEC=str(args.grace),
        STREAM_GAP_BACKFILL="0",
        POLYGON_WS_SYMBOLS=",".join(symbols[:4]),
        SYMBOLS=",".join(symbols[:4]),
        UNIVERSE_PROBE_REDIS=redis_url,
        PROMETHEUS_MULTIPROC_DIR="off",
        DRY_RUN="1",
        BAR_CLOSE_SHARDS=str(SHARDS),
    )
    streamer = None
    feed = None
    workers: list[subprocess.Popen] = []
    result: dict = {}
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        started = time.perf_counter()
        seeded = subprocess.run(
            [sys.executable, __file__, "--seed", str(args.symbols)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        closes = json.loads(seeded.stdout.strip().splitlines()[-1])
        log(
            f"seeded one session for {len(closes)} symbols in {time.perf_counter() - started:.0f} s"
        )

        feed = Feed(symbols, closes)
        burst_t0 = datetime.combine(BURST_DAY, datetime.min.time().replace(hour=10), ET)
        feed.burst = [feed.frame(burst_t0 + timedelta(seconds=k)) for k in range(args.burst)]
        feed.price = dict(closes)
        feed.start()
        base = f"ws://127.0.0.1:{feed.port}"

        # Capacity: the bare reader first, then the streamer on the same frames.
        bare = subprocess.run(
            [sys.executable, __file__, "--bare-reader", f"{base}/bare", str(args.burst)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        bare_stats = json.loads(bare.stdout.strip().splitlines()[-1])
        streamer = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "run_streamer",
                "--url",
                base,
                "--symbols",
                ",".join(symbols),
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        if not feed.streamer_ready.wait(120):
            raise RuntimeError("the streamer did not subscribe")
        feed.release_burst()
        expected = args.burst * args.symbols
        deadline = time.time() + 600
        while ticks_stored(env, burst_t0) < expected and time.time() < deadline:
            time.sleep(0.2)
        streamer_seconds = time.time() - feed.burst_sent_at
        stored = ticks_stored(env, burst_t0)
        import redis

        # the burst's bar tasks: not measured
        redis.Redis.from_url(redis_url).delete("celery", *SHARD_QUEUES)
        log(
            f"capacity: streamer {stored} ticks in {streamer_seconds:.1f} s, bare reader "
            f"{bare_stats['events']} in {bare_stats['seconds']:.2f} s"
        )

        # Real time, one segment per phase (1 worker, then 2), each starting with an empty queue:
        # the feed pauses after a phase until its decisions are all made (or --drain passes).
        per_phase = args.warmup + args.minutes
        phases = {}
        load_before = os.getloadavg()[0]
        counts = [int(c) for c in args.worker_counts.split(",")]
        for count, first_minute in ((c, k * (per_phase + 1)) for k, c in enumerate(counts)):
            # bars sharded by symbol over SHARDS queues (trading/bar_routing.py): one worker
            # consumes every shard, two workers one shard each
            workers = [worker_start(env, f"w{i + 1}", SHARD_QUEUES[i::count]) for i in range(count)]
            time.sleep(10)  # worker start-up and its start-up reconciliation
            first = first_minute * 60
            start = feed.start_segment(per_phase * 60 + 2, first)  # +2 s: the last minute closes
            log(f"{count} worker(s): real-time feed from {datetime.fromtimestamp(start, UTC):%X}")
            feed.segment_done.wait(per_phase * 60 + 120)
            counted = range(first_minute + args.warmup, first_minute + per_phase)
            waited = drained(redis_url, counted, args.symbols, timeout=args.drain)
            phases[count] = latencies(redis_url, start, first, counted, args.symbols)
            phases[count]["drain_s"] = round(waited, 1)
            log(f"{count} worker(s): {phases[count]}")
            for worker in workers:
                stop(worker)
            workers = []
        load_after = os.getloadavg()[0]
        signals = signal_outcomes(env)
        empty = {"p50_s": None, "p99_s": None, "minutes": 0, "missing_decisions": None,
                 "repeated_decisions": None, "drain_s": None}  # fmt: skip
        one, two = phases.get(1, empty), phases.get(2, empty)
        streamer_rate = stored / streamer_seconds if streamer_seconds else None
        bare_rate = bare_stats["events"] / bare_stats["seconds"] if bare_stats["seconds"] else None
        result = {
            "p50_s": two["p50_s"],
            "p99_s": two["p99_s"],
            "max_s": two.get("max_s"),
            "p50_s_1_worker": one["p50_s"],
            "p99_s_1_worker": one["p99_s"],
            "ratio_1_to_2_workers": (
                round(one["p50_s"] / two["p50_s"], 2) if one["p50_s"] and two["p50_s"] else None
            ),
            "minutes_per_phase": args.minutes,
            "minutes_counted": [one["minutes"], two["minutes"]],
            "missing_decisions": [one["missing_decisions"], two["missing_decisions"]],
            "repeated_decisions": [one["repeated_decisions"], two["repeated_decisions"]],
            "drain_after_feed_s": [one["drain_s"], two["drain_s"]],
            "taken_p50_s": [one.get("taken_p50_s"), two.get("taken_p50_s")],
            "task_p50_s": [one.get("task_p50_s"), two.get("task_p50_s")],
            "grace_s": args.grace,
            "signals": signals,
            "streamer_msgs_per_s": round(streamer_rate, 1) if streamer_rate else None,
            "bare_msgs_per_s": round(bare_rate, 1) if bare_rate else None,
            "streamer_to_bare": (
                round(streamer_rate / bare_rate, 4) if streamer_rate and bare_rate else None
            ),
            "loadavg_1m_before": round(load_before, 2),
            "loadavg_1m_after": round(load_after, 2),
            "cpus": os.cpu_count(),
        }
    finally:
        if feed is not None:
            feed.close()
        for worker in workers:
            stop(worker)
        stop(streamer)
        redis_process.kill()
        redis_process.wait()
        database_recreate(base_url, args.db_name, drop_only=True)
    print(json.dumps({"name": "universe", "symbols": args.symbols, "workers": 2, **result}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--seed":
        seed_history(int(sys.argv[2]))
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "--bare-reader":
        bare_reader(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
