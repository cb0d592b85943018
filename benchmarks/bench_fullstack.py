"""Full-stack latency benchmark, trading live (DRY_RUN=0) against the local fake Tradier: from a
minute's last aggregate to the entry at the broker, from its fill to the protective stop at the
broker, and the request budget with 4 workers.

The processes are the service's own, as deployed: web (`uvicorn autotrader_site.asgi`), Celery
worker(s), beat, `manage.py run_streamer`, `manage.py run_account_stream`; a private redis-server
and a scratch PostgreSQL database next to DATABASE_URL's (both dropped at the end). In this
process: the fake Polygon websocket of benchmarks/bench_universe.py (per-second aggregates of a
few symbols in real time: the aggregate of second s is sent when s has ended, so a minute's
second-59 aggregate goes out at the minute's end), the stateful fake Tradier of the tests
(tests/trading/fake_tradier.py over real HTTP and its account websocket; its quotes follow the
feed; sandbox rate limits, 429 beyond them), and the market clock following the feed (a replay
clock in the cache, as the soak does: the feed's day is a fixed session day).

One user setup (the DSL of docs/strategy.md, approved for live) fires on every bar close of
every symbol, cooldown off; risk limits are loose so every minute's signal is sent. The entry
(a pegged limit) fills from the fake's tape (the touch moves to its limit) 0.2 s after it
arrived; the account stream applies the fill and the ledger places the stop; 2 s after the stop
is accepted the tape fills it at the entry price (the trade closes flat), so the next minute
trades again.

Phase 1, the default deployment: ONE worker (prefork, one process), BAR_CLOSE_SHARDS=1, so a
minute's bars are one task and decided one after the other; after --warmup uncounted
minutes, per minute and symbol:
- agg_to_entry: the minute's second-59 aggregate SENT by the fake feed -> the entry order
  accepted by the fake Tradier (its arrival); the minute's end is the same instant +- the
  feed's send jitter, reported as minute_end_to_entry (and per minute: its first entry, what
  a one-symbol trader sees, and its last);
- fill_to_stop: the entry's fill at the fake -> the stop accepted by the fake; the same span is
  the time the filled quantity spent without a working stop (unprotected_max_s);
- stages (profile), each after the minute's end: the bar-close task picked up and finished
  (the worker probe, benchmarks/universe_probe.py) and the Signal row created (worker clock).
Phase 2 (--budget-minutes, after --budget-warmup): the streamer restarted with
BAR_CLOSE_SHARDS=4 and 4 workers, one shard each (`-Q celery,bars.<k>`; the symbols are
picked one per shard), so a minute's symbols are decided in parallel: the same figures
(`workers_4`) and the requests per minute per endpoint class as the fake saw them (mean and
the busiest sliding 60 s), 429s.
Per-flow rows, the fake's request log and every process's log stay in the printed `logs`
folder. No test runs this (a run takes minutes); `make bench` runs the default size.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/autotrader .venv/bin/python \\
        benchmarks/bench_fullstack.py --symbols 4 --minutes 10 --budget-minutes 2

Last line: {"name": "fullstack", "minutes", "agg_to_entry_p50_ms", "agg_to_entry_p99_ms",
"minute_end_to_entry_p50_s", "minute_end_to_entry_p99_s", "fill_to_stop_p50_ms",
"fill_to_stop_p99_ms", "unprotected_max_s", "requests_per_min": {...}, "http_429",
"loadavg_1m_before", ...}. Goals: agg_to_entry p99 <= 250 ms, minute_end_to_entry p99 <= 1.5 s,
fill_to_stop p99 <= 250 ms, unprotected max <= 0.5 s, 0 x 429.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import bench_database_url, child_env, database_recreate  # noqa: E402
from benchmarks.bench_universe import (  # noqa: E402
    ET,
    FEED_DAY,
    Feed,
    free_port,
    redis_start,
    seed_history,
    stop,
    symbols_of,
)
from tests.trading.fake_tradier import DONE, FakeTradier, endpoint_class  # noqa: E402
from trading.bar_routing import bar_queue, bar_queues  # noqa: E402  (pure)

SETUP = "EVERY_MINUTE"
SETUP_YAML = f"""\
name: {SETUP}
description: fires on every bar close (the full-stack benchmark)
condition: close > 0
stop: close - 0.5
target_one: close + 1
target_two: close + 2
cooldown_sec: 0
"""
FEED_T0 = datetime.combine(FEED_DAY, datetime.min.time().replace(hour=10), ET)
SANDBOX_LIMITS = {"trading": 60, "standard": 60, "market": 60}  # TRADIER_ENV=sandbox
ENTRY_FILL_AFTER_SEC = 0.2
STOP_FILL_AFTER_SEC = 2.0
SHARDS = 4  # BAR_CLOSE_SHARDS of the 4-worker phase: the symbols of a minute in parallel
PROBE_START, PROBE_DONE = "universe:start", "universe:done"  # benchmarks/universe_probe.py


def spread_symbols(n: int, shards: int) -> list[str]:
    """`n` of the seeded names spread evenly over the bar shards (U000, U001, ... in order,
    skipping a name whose shard already has its share)."""
    share, taken, out = -(-n // shards), {}, []
    for symbol in symbols_of(64 * n):
        queue = bar_queue(symbol, shards)
        if taken.get(queue, 0) < share:
            taken[queue] = taken.get(queue, 0) + 1
            out.append(symbol)
        if len(out) == n:
            return out
    raise RuntimeError("not enough names")


def log(message: str) -> None:
    print(f"[fullstack {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (p99 of fewer than 100 values is the maximum)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(len(ordered) * q + 0.5) - 1))]


def rounded(value: float | None, scale: float = 1.0, digits: int = 3) -> float | None:
    return None if value is None else round(value * scale, digits)


class TimedTradier(FakeTradier):
    """The fake Tradier, also recording when each order node first filled and every request
    (wall time, endpoint class, status) for the per-minute budget figures."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.filled_wall: dict[int, float] = {}
        self.log: list[tuple[float, str, int, str]] = []  # (wall, class, status, request)

    def _execute(self, node: dict, parent: dict | None, qty: float, price: float) -> None:
        before = node["exec_quantity"]
        super()._execute(node, parent, qty, price)
        if node["exec_quantity"] > before:
            self.filled_wall.setdefault(node["id"], time.time())

    def handle(self, request):
        response = super().handle(request)
        klass = endpoint_class(request.method, request.url.path)
        line = f"{request.method} {request.url.path}"
        self.log.append((time.time(), klass, response.status_code, line))
        return response


class QuotedFeed(Feed):
    """The universe feed, also moving the fake Tradier's touch to each second's close (a
    one-cent spread around it) and recording when each minute's second-59 frame went out."""

    def __init__(self, symbols, closes, tradier: TimedTradier) -> None:
        super().__init__(symbols, closes)
        self.tradier = tradier
        self.sent_59: dict[datetime, float] = {}  # minute start (UTC) -> wall time sent
        for symbol, price in closes.items():
            bid = round(price - 0.005, 2)
            tradier.quote(symbol, bid, round(bid + 0.01, 2))

    def frame(self, second_start: datetime) -> str:
        text = super().frame(second_start)
        for symbol in self.symbols:
            close = self.price[symbol]
            bid = round(close - 0.005, 2)
            self.tradier.quote(symbol, bid, round(bid + 0.01, 2))
        if second_start.second == 59:
            minute = (second_start - timedelta(seconds=59)).astimezone(UTC)
            self.sent_59[minute] = time.time()
        return text


class Tape(threading.Thread):
    """The market at the fake: a working entry is filled by the touch reaching its limit
    ENTRY_FILL_AFTER_SEC after it arrived; a stop accepted STOP_FILL_AFTER_SEC ago is filled at
    its trade's entry price (the trade closes flat, so the next minute's signal trades)."""

    def __init__(self, tradier: TimedTradier) -> None:
        super().__init__(daemon=True)
        self.tradier = tradier
        self.halt = threading.Event()
        self.entry_price: dict[str, float] = {}  # symbol -> its open entry's fill price

    def run(self) -> None:
        fake = self.tradier
        while not self.halt.wait(0.01):
            now = time.time()
            with fake.lock:
                for order_id, order in list(fake.orders.items()):
                    if order.get("leg") or order["status"] in DONE:
                        continue
                    if now - fake.created_wall.get(order_id, now) < (
                        ENTRY_FILL_AFTER_SEC if order["side"] == "buy" else STOP_FILL_AFTER_SEC
                    ):
                        continue
                    symbol = order["symbol"]
                    if order["side"] == "buy":
                        limit = order.get("price") or fake.quotes[symbol]["ask"]
                        fake.tick(symbol, bid=round(limit - 0.01, 2), ask=limit)
                        if order["exec_quantity"]:
                            self.entry_price[symbol] = order["avg_fill_price"]
                    elif order["type"] == "stop":
                        price = self.entry_price.get(symbol, order["stop_price"])
                        fake.fill(order_id, price=f"{price:.2f}")


# --- in-process Django (the scratch database): setup, the market clock, the figures ---------
def django_setup(env: dict) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
    import django

    django.setup()


def prepare(symbols: list[str], n: int) -> dict[str, float]:
    """Migrate, seed one session of history, approve the setup for live, switch off the
    nightly back-fill (it would call the real Polygon). Returns each symbol's last close."""
    from django.core.management import call_command

    from strategies.models import SetupControl
    from strategies.setups.registry import setup_get, setups_changed
    from trading.schedules import schedule_ensure

    call_command("migrate", verbosity=0, interactive=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        seed_history(n)
    closes = json.loads(out.getvalue().strip().splitlines()[-1])
    setups_changed()
    entry = setup_get(SETUP)
    if entry is None or not entry.ok:
        raise RuntimeError(f"setup {SETUP} not loaded: {entry and entry.error}")
    SetupControl.objects.update_or_create(name=SETUP, defaults={"live_version": entry.version})
    schedule_ensure(
        "autotrader: nightly backfill",
        "marketdata.backfill_previous_session",
        crontab="0 9 * * 2-6",
        enabled=False,
    )
    return {s: closes[s] for s in symbols}


class ClockFollower(threading.Thread):
    """The replay clock (shared through the cache) at the feed's current second."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.halt = threading.Event()
        self.origin: tuple[float, int] | None = None  # (wall start, first feed second)

    def feed_now(self) -> datetime:
        if self.origin is None:
            return FEED_T0.astimezone(UTC)
        start, first = self.origin
        return (FEED_T0 + timedelta(seconds=first + max(0.0, time.time() - start))).astimezone(UTC)

    def run(self) -> None:
        from autotrader_site.clock import MarketClock

        while not self.halt.wait(0.1):
            with contextlib.suppress(Exception):
                MarketClock.set_replay_time(self.feed_now())


def rows_of(minutes: list[datetime]) -> list[dict]:
    """Per signal of the counted minutes: its entry and stop at the broker and the database
    times of the signal and entry rows."""
    from django.db import close_old_connections

    from strategies.models import Signal
    from trading.models import Order

    close_old_connections()
    rows = []
    for signal in Signal.objects.filter(setup=SETUP, bar_ts__in=minutes).order_by("bar_ts"):
        entry = Order.objects.filter(signal=signal, role="entry").order_by("id").first()
        stop_row = None
        if entry is not None and entry.trade_id:
            stop_row = (
                Order.objects.filter(trade_id=entry.trade_id, role="stop")
                .exclude(broker_order_id="")
                .order_by("id")
                .first()
            )
        rows.append(
            {
                "symbol": signal.symbol,
                "minute": signal.bar_ts,
                "outcome": signal.outcome,
                "signal_at": signal.created_at.timestamp(),
                "entry_id": int(entry.broker_order_id) if entry and entry.broker_order_id else None,
                "stop_id": int(stop_row.broker_order_id) if stop_row else None,
            }
        )
    return rows


def probes(redis_url: str, key: str) -> dict[tuple[str, str], float]:
    import redis

    out: dict[tuple[str, str], float] = {}
    for raw in redis.Redis.from_url(redis_url).lrange(key, 0, -1):
        symbol, ts, at, *_ = json.loads(raw)
        out.setdefault((symbol, ts), at)
    return out


# --- processes ---------------------------------------------------------------------------------
class Stack:
    def __init__(self, env: dict, logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], **env: str) -> None:
        with open(self.logs / f"{name}.log", "a") as out:
            self.procs[name] = subprocess.Popen(
                cmd, cwd=ROOT, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def streamer(self, feed: Feed, symbols: list[str], shards: int) -> None:
        """(Re)start `run_streamer` on `feed`, publishing bars over `shards` queues."""
        self.stop("streamer")
        self.start(
            "streamer",
            [sys.executable, "manage.py", "run_streamer", "--url", f"ws://127.0.0.1:{feed.port}",
             "--symbols", ",".join(symbols)],
            BAR_CLOSE_SHARDS=str(shards),
        )  # fmt: skip
        if not feed.streamer_ready.wait(120):
            raise RuntimeError(f"the streamer did not subscribe: {self.alive()}")
        feed.release_burst()  # no burst: straight to the real-time segments

    def worker(self, name: str, queues: list[str], shards: int) -> None:
        # FULLSTACK_WORKER_INCLUDE: more modules for the workers (e.g. a profiler's hooks)
        include = ",".join(
            m
            for m in ("benchmarks.universe_probe", os.environ.get("FULLSTACK_WORKER_INCLUDE"))
            if m
        )
        self.start(
            name,
            [
                sys.executable, "-m", "celery", "-A", "autotrader_site", "worker", "-l", "WARNING",
                "-c", "1", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
                "--include", include, "-Q", ",".join(["celery", *queues]),
            ],
            BAR_CLOSE_SHARDS=str(shards),
        )  # fmt: skip

    def stop(self, name: str) -> None:
        stop(self.procs.pop(name, None))

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def alive(self) -> dict[str, bool]:
        return {name: p.poll() is None for name, p in self.procs.items()}


def wait_until(predicate, timeout: float, step: float = 0.5) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def workers_ready(n: int) -> bool:
    from django.db import close_old_connections

    from trading.models import WorkerHeartbeat

    close_old_connections()
    return WorkerHeartbeat.objects.filter(info__event="worker_ready").count() >= n


# --- the figures -----------------------------------------------------------------------------
def latency_figures(rows, sent_59, fake: TimedTradier, starts, dones, seg) -> dict:
    start_wall, first = seg
    agg, end, fill, stages = [], [], [], {"pickup": [], "signal": [], "task_done": []}
    missing_entry = missing_stop = 0
    per_minute: dict[datetime, list[float]] = {}  # minute -> its entries after its end
    for row in rows:
        minute_end = start_wall + (row["minute"] - FEED_T0).total_seconds() + 60 - first
        entry_at = fake.created_wall.get(row["entry_id"]) if row["entry_id"] else None
        if entry_at is None:
            missing_entry += 1
            continue
        sent = sent_59.get(row["minute"])
        if sent is not None:
            agg.append(entry_at - sent)
        end.append(entry_at - minute_end)
        per_minute.setdefault(row["minute"], []).append(entry_at - minute_end)
        key = (row["symbol"], row["minute"].isoformat())
        for name, table in (("pickup", starts), ("task_done", dones)):
            if key in table:
                stages[name].append(table[key] - minute_end)
                row[name] = round(table[key] - minute_end, 4)
        stages["signal"].append(row["signal_at"] - minute_end)
        row["signal"] = round(row["signal_at"] - minute_end, 4)
        row["entry"] = round(entry_at - minute_end, 4)
        filled_at = fake.filled_wall.get(row["entry_id"])
        stop_at = fake.created_wall.get(row["stop_id"]) if row["stop_id"] else None
        if filled_at is None or stop_at is None:
            missing_stop += 1
            continue
        fill.append(stop_at - filled_at)
        row["fill_to_stop"] = round(stop_at - filled_at, 4)
    return {
        "flows": len(rows),
        "entries_at_broker": len(end),
        "missing_entries": missing_entry,
        "missing_stops": missing_stop,
        "agg_to_entry_p50_ms": rounded(pct(agg, 0.5), 1000, 1),
        "agg_to_entry_p99_ms": rounded(pct(agg, 0.99), 1000, 1),
        "agg_to_entry_max_ms": rounded(max(agg) if agg else None, 1000, 1),
        "minute_end_to_entry_p50_s": rounded(pct(end, 0.5)),
        "minute_end_to_entry_p99_s": rounded(pct(end, 0.99)),
        # the minute's first entry (what a one-symbol trader sees) and its last one
        "first_entry_of_minute_p50_s": rounded(pct([min(v) for v in per_minute.values()], 0.5)),
        "first_entry_of_minute_p99_s": rounded(pct([min(v) for v in per_minute.values()], 0.99)),
        "last_entry_of_minute_p99_s": rounded(pct([max(v) for v in per_minute.values()], 0.99)),
        "fill_to_stop_p50_ms": rounded(pct(fill, 0.5), 1000, 1),
        "fill_to_stop_p99_ms": rounded(pct(fill, 0.99), 1000, 1),
        "unprotected_max_s": rounded(max(fill) if fill else None),
        "stages_p50_s": {k: rounded(pct(v, 0.5)) for k, v in stages.items()},
        "stages_p99_s": {k: rounded(pct(v, 0.99)) for k, v in stages.items()},
    }


def budget_figures(fake: TimedTradier, since: float, until: float) -> dict:
    rows = [r[:3] for r in fake.log if since <= r[0] < until]
    minutes = max(1e-9, (until - since) / 60)
    per_min, busiest = {}, {}
    for klass in ("trading", "standard", "market"):
        times = sorted(t for t, k, _ in rows if k == klass)
        per_min[klass] = round(len(times) / minutes, 1)
        most, lo = 0, 0
        for hi, t in enumerate(times):  # the busiest sliding 60 s
            while times[lo] < t - 60:
                lo += 1
            most = max(most, hi - lo + 1)
        busiest[klass] = most
    return {
        "requests_per_min": per_min,
        "requests_busiest_60s": busiest,
        "http_429_in_phase": sum(1 for _, _, status in rows if status == 429),
    }


def run_phase(stack, feed, clock, *, workers: int, warmup: int, minutes: int, first_minute: int):
    """Start `workers` workers, feed warmup+minutes minutes in real time, stop the workers;
    the counted minutes and the phase's wall span."""
    from django.db import close_old_connections

    from trading.models import WorkerHeartbeat

    close_old_connections()
    WorkerHeartbeat.objects.filter(info__event="worker_ready").delete()
    names = [f"w{first_minute}x{i}" for i in range(workers)]
    queues = bar_queues(workers)  # 1 worker: the default queue only (BAR_CLOSE_SHARDS=1)
    for i, name in enumerate(names):
        stack.worker(name, queues[i : i + 1], workers)
    if not wait_until(lambda: workers_ready(workers), 180):
        raise RuntimeError(f"workers not ready: {stack.alive()}")
    per_phase = warmup + minutes
    first = first_minute * 60
    start = feed.start_segment(per_phase * 60 + 3, first)  # +3 s: the next minute's first seconds
    clock.origin = (start, first)
    log(f"{workers} worker(s): feed minutes {first_minute}..{first_minute + per_phase - 1} from "
        f"{datetime.fromtimestamp(start, UTC):%X}")  # fmt: skip
    feed.segment_done.wait(per_phase * 60 + 120)
    time.sleep(STOP_FILL_AFTER_SEC + 3)  # the last minute's entries, fills and stops
    until = time.time()
    for name in names:
        stack.stop(name)
    counted = [
        (FEED_T0 + timedelta(minutes=m)).astimezone(UTC)
        for m in range(first_minute + warmup, first_minute + per_phase)
    ]
    return counted, (start, first), (start + warmup * 60, until)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--minutes", type=int, default=1, help="counted minutes, 1 worker")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted minutes before")
    # the defaults are `make bench`'s size (about 3 minutes); the figures need --minutes 10
    parser.add_argument("--budget-minutes", type=int, default=0, help="4-worker phase")
    parser.add_argument("--budget-warmup", type=int, default=0, help="its uncounted minutes")
    parser.add_argument("--db-name", default="autotrader_bench_fullstack")
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")) or not shutil.which(
        "redis-server"
    ):
        print(json.dumps({"name": "fullstack", "skipped": "needs DATABASE_URL and redis-server"}))
        return 0
    load_before = os.getloadavg()[0]
    symbols = spread_symbols(args.symbols, SHARDS)
    db_url = bench_database_url(base_url, args.db_name)
    database_recreate(base_url, args.db_name)
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    redis_process = redis_start(redis_port)
    logs = Path(tempfile.mkdtemp(prefix="bench-fullstack-"))
    setups_dir = logs / "setups"
    setups_dir.mkdir()
    (setups_dir / "every_minute.yaml").write_text(SETUP_YAML)

    fake = TimedTradier(account=f"VA{uuid.uuid4().hex[:8].upper()}", limits=SANDBOX_LIMITS)
    fake.cash_start = 10**8
    clock = ClockFollower()
    fake.clock = clock.feed_now  # the broker's transaction_date on the market clock
    tradier_url = fake.serve_http()
    ws_url = fake.start_stream()
    env = child_env(db_url)
    env.pop("DB_POOL_MAX_SIZE", None)
    env.update(
        REDIS_URL=redis_url,
        CELERY_TASK_ALWAYS_EAGER="0",
        DRY_RUN="0",
        TRADIER_ENV="sandbox",
        TRADIER_BASE_URL=tradier_url,
        TRADIER_ACCOUNT_WS_URL=ws_url,
        TRADIER_ACCESS_TOKEN="test-token",
        TRADIER_ACCOUNT_ID=fake.account,
        POLYGON_WS_KEY="bench-key",
        STREAM_GAP_BACKFILL="0",
        SYMBOLS=",".join(symbols),
        POLYGON_WS_SYMBOLS=",".join(symbols),
        BAR_CLOSE_SHARDS="1",  # the default deployment; the 4-worker phase restarts with 4
        SETUPS_DIR=str(setups_dir),
        ENABLED_SETUPS=",",
        RISK_MAX_CONCURRENT="1000",
        RISK_MAX_OPEN_ORDERS="1000",
        RISK_MAX_DAILY_LOSS_R="0",
        RISK_DUPLICATE_EXPOSURE="0",
        RISK_MIN_STOP_ATR="0",
        RISK_MIN_STOP_TICKS="0",
        RISK_MIN_STOP_SPREADS="0",
        RISK_MIN_T1_COST_MULTIPLE="0",
        UNIVERSE_PROBE_REDIS=redis_url,
        PROMETHEUS_MULTIPROC_DIR="off",
        HEARTBEAT_DIR=str(logs / "heartbeats"),
        AUTOTRADER_ENV_FILE="/nonexistent",
    )
    django_setup(env)
    stack = Stack(env, logs)
    result: dict = {}
    tape = Tape(fake)
    try:
        closes = prepare(symbols, int(symbols[-1][1:]) + 1)
        feed = QuotedFeed(symbols, closes, fake)
        feed.start()
        clock.start()
        tape.start()
        web_port = free_port()
        stack.start(
            "web",
            [sys.executable, "-m", "uvicorn", "autotrader_site.asgi:application", "--host",
             "127.0.0.1", "--port", str(web_port), "--log-level", "warning"],
        )  # fmt: skip
        stack.start(
            "beat",
            [sys.executable, "-m", "celery", "-A", "autotrader_site", "beat", "-l", "WARNING",
             "--scheduler", "autotrader_site.beat:HeartbeatScheduler",
             "--pidfile", str(logs / "beat.pid")],
        )  # fmt: skip
        stack.start("account_stream", [sys.executable, "manage.py", "run_account_stream"])
        stack.streamer(feed, symbols, 1)
        if not wait_until(lambda: fake.stream_clients >= 1, 120):
            raise RuntimeError(f"the account stream did not connect: {stack.alive()}")

        counted, seg, _ = run_phase(
            stack, feed, clock, workers=1, warmup=args.warmup, minutes=args.minutes,
            first_minute=0,
        )  # fmt: skip
        rows = rows_of(counted)
        figures = latency_figures(
            rows, feed.sent_59, fake, probes(redis_url, PROBE_START),
            probes(redis_url, PROBE_DONE), seg,
        )  # fmt: skip
        (logs / "rows.json").write_text(json.dumps(rows, default=str, indent=1))  # per flow
        outcomes: dict[str, int] = {}
        for row in rows:
            outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + 1
        log(f"1 worker: {figures}")
        one_worker_budget = budget_figures(fake, seg[0], time.time())
        budget, four = {}, {}
        if args.budget_minutes:
            first_minute = args.warmup + args.minutes + 1
            feed = QuotedFeed(symbols, dict(feed.price), fake)  # the streamer's new connection
            feed.start()
            stack.streamer(feed, symbols, SHARDS)
            counted4, seg4, span = run_phase(
                stack, feed, clock, workers=SHARDS, warmup=args.budget_warmup,
                minutes=args.budget_minutes, first_minute=first_minute,
            )  # fmt: skip
            budget = budget_figures(fake, *span)
            rows4 = rows_of(counted4)
            four = latency_figures(
                rows4, feed.sent_59, fake, probes(redis_url, PROBE_START),
                probes(redis_url, PROBE_DONE), seg4,
            )  # fmt: skip
            (logs / "rows_4_workers.json").write_text(json.dumps(rows4, default=str, indent=1))
            log(f"4 workers: {budget} {four}")
        (logs / "requests.txt").write_text("\n".join(f"{r[0]:.3f} {r[2]} {r[3]}" for r in fake.log))
        result = {
            "minutes": args.minutes,
            "symbols": args.symbols,
            **figures,
            "signal_outcomes": outcomes,
            "requests_per_min": budget.get("requests_per_min"),
            "requests_busiest_60s": budget.get("requests_busiest_60s"),
            "budget_minutes_4_workers": args.budget_minutes,
            "workers_4": four,
            "requests_per_min_1_worker": one_worker_budget["requests_per_min"],
            "http_429": sum(fake.throttled.values()),
            "limits": SANDBOX_LIMITS,
            "grace_s": float(os.environ.get("POLYGON_WS_BAR_GRACE_SEC", "2.0")),
            "alive_at_end": all(stack.alive().values()),
            "loadavg_1m_before": round(load_before, 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
            "logs": str(logs),
        }
    finally:
        tape.halt.set()
        clock.halt.set()
        stack.stop_all()
        fake.close()
        from django.db import connections

        connections.close_all()
        redis_process.kill()
        redis_process.wait()
        database_recreate(base_url, args.db_name, drop_only=True)
    print(json.dumps({"name": "fullstack", **result}, default=str))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # the feed's websocket handlers wait in the loop's default executor (non-daemon threads)
    # for a next segment that never comes: interpreter exit would join them forever
    os._exit(code)
