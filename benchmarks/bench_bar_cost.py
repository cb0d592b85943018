"""Cost of one closed bar on PostgreSQL: queries and worker time of `process_bar_close`.

A scratch database next to DATABASE_URL's (dropped at the end) with one synthetic session of SPY
as history; the next session's bars are stored and handled one by one, as a worker handles them
(paper broker, DRY_RUN=1). Per bar: the queries the pipeline ran (django's CaptureQueriesContext)
and its CPU time in the worker's thread (time.thread_time; the database's own time is not in it)
and wall time.

Last line: {"name": "bar_cost", "bars", "queries_p50", "queries_p99", "queries_max",
"worker_cpu_ms_p50", "worker_cpu_ms_p99", "wall_ms_p50", "wall_ms_p99"}. Goal: <= 3 queries and
<= 3 ms of worker time per bar.

    DATABASE_URL=postgres://... .venv/bin/python benchmarks/bench_bar_cost.py

--mode task: what a worker runs per closed bar, on real PostgreSQL AND Redis (REDIS_URL kept:
the channel layer is channels_redis, so every commit's live event is a real send). --symbols N
symbols (U000..), one synthetic session of history each, then --minutes minutes: each minute's
bars of every symbol are stored (the streamer's write, not counted), then handed one by one to
the bar-close Celery task (`trading.on_bar_closed`, run through Celery's tracer with `apply`,
as a worker runs it). Per bar: queries, CPU of the whole process (time.process_time: the live
event's sender threads count too) and wall time; quiet bars (no signal) and bars with a signal
reported apart. Last line: {"name": "bar_cost_task", "symbols", "bars", "quiet": {...},
"signal": {...}} with queries_p50/p99/max, cpu_ms_p50/p99, wall_ms_p50/p99 in each.

    DATABASE_URL=... REDIS_URL=redis://... .venv/bin/python benchmarks/bench_bar_cost.py \\
        --mode task --symbols 50 --minutes 20

--mode batch: the same, but each minute's bars of every symbol go to the batch task
(`trading.on_bars_closed`, one shard's message: `--symbols 250` is a 500-symbol universe on
2 shards) in one call. Per batch: queries, process CPU and wall. Last line: {"name":
"bar_cost_batch", "symbols", "batches", "signals", "queries_p50", "queries_max", "cpu_ms_p50",
"cpu_ms_max", "wall_ms_p50", "wall_ms_max", "cpu_ms_per_bar_p50"}.

--mode worker: the same bars through a real `celery worker` (prefork, --concurrency 1, as the
universe benchmark starts it) over REDIS_URL's broker, once with Celery task events on and once
off (CELERY_WORKER_SEND_TASK_EVENTS), each phase its own minutes after its own warm-up minutes.
Per phase: the CPU of the worker's whole process tree (/proc, consumer and pool child) over its
counted bars, divided by the bars, and the wall time from the first send to the last task's end
(benchmarks/universe_probe.py). Last line: {"name": "bar_cost_worker", "symbols", "phases":
{"events_on": {"bars", "cpu_ms_per_bar", "wall_ms_per_bar"}, "events_off": {...}}}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import bench_database_url, child_env, database_recreate  # noqa: E402
from benchmarks.universe_probe import PROBE_KEY  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q + 0.5) - 1)]


def run(bars_n: int) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from autotrader_site.clock import MarketClock
    from marketdata.replay import synthetic_sessions
    from marketdata.services import bars_upsert
    from trading.pipeline import process_bar_close

    bars = synthetic_sessions(symbol="SPY", sessions=2, seed=7, end=date(2026, 3, 6))
    history, live = bars[:390], bars[390 : 390 + bars_n]
    bars_upsert(bars=history)
    queries, cpu_ms, wall_ms = [], [], []
    for bar in live:
        bars_upsert(bars=[bar])  # the streamer's write, not the pipeline's
        MarketClock.set_replay_time(bar.ts)
        with CaptureQueriesContext(connection) as captured:
            cpu, started = time.thread_time(), time.perf_counter()
            process_bar_close(bar=bar)
            cpu_ms.append((time.thread_time() - cpu) * 1000)
            wall_ms.append((time.perf_counter() - started) * 1000)
        queries.append(len(captured.captured_queries))
    return {
        "bars": len(live),
        "queries_p50": statistics.median(queries),
        "queries_p99": _pct(queries, 0.99),
        "queries_max": max(queries),
        "worker_cpu_ms_p50": round(statistics.median(cpu_ms), 2),
        "worker_cpu_ms_p99": round(_pct(cpu_ms, 0.99), 2),
        "wall_ms_p50": round(statistics.median(wall_ms), 2),
        "wall_ms_p99": round(_pct(wall_ms, 0.99), 2),
    }


def _stats(queries: list[int], cpu_ms: list[float], wall_ms: list[float]) -> dict:
    if not queries:
        return {"bars": 0}
    return {
        "bars": len(queries),
        "queries_p50": statistics.median(queries),
        "queries_p99": _pct(queries, 0.99),
        "queries_max": max(queries),
        "cpu_ms_p50": round(statistics.median(cpu_ms), 2),
        "cpu_ms_p99": round(_pct(cpu_ms, 0.99), 2),
        "wall_ms_p50": round(statistics.median(wall_ms), 2),
        "wall_ms_p99": round(_pct(wall_ms, 0.99), 2),
    }


def _profiler():
    import cProfile

    return cProfile.Profile()


def _sessions(symbols_n: int) -> dict:
    """Two synthetic sessions per symbol (U000..), the first stored as history."""
    from marketdata.replay import synthetic_sessions
    from marketdata.services import bars_upsert

    sessions = {}
    for i in range(symbols_n):
        symbol = f"U{i:03d}"
        bars = synthetic_sessions(
            symbol=symbol, sessions=2, seed=100 + i, end=date(2026, 3, 6), start_price=50 + i
        )
        sessions[symbol] = bars
        bars_upsert(bars=bars[:390])
    return sessions


def run_task(symbols_n: int, minutes: int, warmup: int) -> dict:
    """--mode task in the child: N symbols' bars through the bar-close task, minute by minute."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from autotrader_site.clock import MarketClock
    from marketdata.services import bars_upsert
    from trading.tasks import on_bar_closed

    sessions = _sessions(symbols_n)
    by_kind: dict[str, tuple[list, list, list]] = {"quiet": ([], [], []), "signal": ([], [], [])}
    profile_dir = os.environ.get("BAR_COST_PROFILE_DIR")  # --profile: cProfile per kind of bar
    profiles: dict = {}
    for minute in range(warmup + minutes):
        minute_bars = [bars[390 + minute] for bars in sessions.values()]
        bars_upsert(bars=minute_bars)  # the streamer's write, not the task's
        MarketClock.set_replay_time(minute_bars[0].ts)
        for bar in minute_bars:
            event = bar.as_event()
            profile = _profiler() if profile_dir and minute >= warmup else None
            with CaptureQueriesContext(connection) as captured:
                cpu, started = time.process_time(), time.perf_counter()
                if profile:
                    profile.enable()
                handled = on_bar_closed.apply(args=[event]).get()
                if profile:
                    profile.disable()
                cpu_ms = (time.process_time() - cpu) * 1000
                wall_ms = (time.perf_counter() - started) * 1000
            if minute < warmup:
                continue  # each symbol's feature engine warms up on its first bars
            kind = "signal" if handled else "quiet"
            if profile:
                profiles.setdefault(kind, []).append(profile)
            queries, cpus, walls = by_kind[kind]
            queries.append(len(captured.captured_queries))
            cpus.append(cpu_ms)
            walls.append(wall_ms)
    for kind, runs in profiles.items():
        import pstats

        pstats.Stats(*runs).dump_stats(os.path.join(profile_dir, f"bar_cost_{kind}.prof"))
    return {
        "symbols": symbols_n,
        "bars": minutes * symbols_n,
        "quiet": _stats(*by_kind["quiet"]),
        "signal": _stats(*by_kind["signal"]),
    }


def run_batch(symbols_n: int, minutes: int, warmup: int) -> dict:
    """--mode batch in the child: each minute's bars of every symbol handed to the batch task
    (`trading.on_bars_closed`, as one shard's message) at once."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from autotrader_site.clock import MarketClock
    from marketdata.services import bars_upsert
    from trading.tasks import on_bars_closed

    sessions = _sessions(symbols_n)
    queries, cpus, walls, signals = [], [], [], 0
    profile_dir = os.environ.get("BAR_COST_PROFILE_DIR")
    profile = _profiler() if profile_dir else None
    for minute in range(warmup + minutes):
        minute_bars = [bars[390 + minute] for bars in sessions.values()]
        bars_upsert(bars=minute_bars)  # the streamer's write, not the task's
        MarketClock.set_replay_time(minute_bars[0].ts)
        events = [bar.as_event() for bar in minute_bars]
        counted = minute >= warmup  # the first minutes build every symbol's feature engine
        with CaptureQueriesContext(connection) as captured:
            cpu, started = time.process_time(), time.perf_counter()
            if profile and counted:
                profile.enable()
            handled = on_bars_closed.apply(args=[events]).get()
            if profile and counted:
                profile.disable()
            cpu_ms = (time.process_time() - cpu) * 1000
            wall_ms = (time.perf_counter() - started) * 1000
        if counted:
            queries.append(len(captured.captured_queries))
            cpus.append(cpu_ms)
            walls.append(wall_ms)
            signals += handled
    if profile:
        profile.dump_stats(os.path.join(profile_dir, "bar_cost_batch.prof"))
    return {
        "symbols": symbols_n,
        "batches": minutes,
        "signals": signals,
        "queries_p50": statistics.median(queries),
        "queries_max": max(queries),
        "cpu_ms_p50": round(statistics.median(cpus), 1),
        "cpu_ms_max": round(max(cpus), 1),
        "wall_ms_p50": round(statistics.median(walls), 1),
        "wall_ms_max": round(max(walls), 1),
        "cpu_ms_per_bar_p50": round(statistics.median(cpus) / symbols_n, 3),
    }


def seed_worker(symbols_n: int, minutes: int) -> None:
    """--mode worker, in a child with Django: history plus `minutes` live minutes of every
    symbol stored (the task reads bars only up to its own), the bar events printed per minute."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
    django.setup()
    from marketdata.replay import synthetic_sessions
    from marketdata.services import bars_upsert

    per_minute: list[list[dict]] = [[] for _ in range(minutes)]
    for i in range(symbols_n):
        bars = synthetic_sessions(
            symbol=f"U{i:03d}", sessions=2, seed=100 + i, end=date(2026, 3, 6), start_price=50 + i
        )
        bars_upsert(bars=bars[: 390 + minutes])
        for m in range(minutes):
            per_minute[m].append(bars[390 + m].as_event())
    print(json.dumps(per_minute))


def _tree_cpu_s(session: int) -> float:
    """User + system CPU seconds of every live process in `session` (the worker's own session:
    it is started with start_new_session)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # fields after "(comm)": state ppid pgrp session ...
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _send_and_wait(sender, client, worker, minutes: list[list[dict]]) -> None:
    """Queue these minutes' bar tasks and wait until the probe saw every one end."""
    expected = client.llen(PROBE_KEY) + sum(len(m) for m in minutes)
    for minute in minutes:
        for event in minute:
            sender.send_task("trading.on_bar_closed", args=[event], queue="celery")
    deadline = time.time() + 900
    while client.llen(PROBE_KEY) < expected:
        if time.time() > deadline or worker.poll() is not None:
            raise RuntimeError("the worker did not finish its bars")
        time.sleep(0.05)


def run_worker(env: dict, symbols_n: int, minutes: int, warmup: int) -> dict:
    """--mode worker in the parent: one real worker per phase (task events on, then off)."""
    import redis
    from celery import Celery

    phases = {"events_on": "1", "events_off": "0"}
    per_phase = warmup + minutes
    seeded = subprocess.run(
        [sys.executable, __file__, "--seed-worker", str(symbols_n), str(per_phase * len(phases))],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    events = json.loads(seeded.stdout.strip().splitlines()[-1])
    broker = env["REDIS_URL"]
    client = redis.Redis.from_url(broker)
    sender = Celery(broker=broker)
    result = {}
    for k, (phase, flag) in enumerate(phases.items()):
        mine = events[k * per_phase : (k + 1) * per_phase]
        client.delete("celery", PROBE_KEY)
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "celery"), "-A", "autotrader_site", "worker",
             "-l", "warning", "--concurrency", "1", "-n", f"cost-{phase}@%h",
             "--include", "benchmarks.universe_probe", "--without-gossip", "--without-mingle",
             "-Q", "celery"],
            cwd=ROOT,
            env={**env, "CELERY_WORKER_SEND_TASK_EVENTS": flag, "UNIVERSE_PROBE_REDIS": broker},
            start_new_session=True,
        )  # fmt: skip
        try:
            # not counted: start-up, its reconciliation, each symbol's feature engine built
            _send_and_wait(sender, client, worker, mine[:warmup])
            cpu, started = _tree_cpu_s(worker.pid), time.perf_counter()
            _send_and_wait(sender, client, worker, mine[warmup:])
            cpu, wall = _tree_cpu_s(worker.pid) - cpu, time.perf_counter() - started
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        bars = minutes * symbols_n
        result[phase] = {
            "bars": bars,
            "cpu_ms_per_bar": round(cpu * 1000 / bars, 2),
            "wall_ms_per_bar": round(wall * 1000 / bars, 2),
        }
    return {"symbols": symbols_n, "phases": result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=200)
    parser.add_argument("--db-name", default="autotrader_bench_bar_cost")
    parser.add_argument(
        "--mode", choices=["pipeline", "task", "batch", "worker"], default="pipeline"
    )
    parser.add_argument("--symbols", type=int, default=50, help="--mode task")
    parser.add_argument("--minutes", type=int, default=20, help="--mode task: counted minutes")
    parser.add_argument("--warmup", type=int, default=2, help="--mode task: minutes not counted")
    parser.add_argument("--profile", metavar="DIR", help="--mode task: cProfile dumps to DIR")
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")):
        print(json.dumps({"name": "bar_cost", "skipped": "needs DATABASE_URL (PostgreSQL)"}))
        return 0
    db_url = bench_database_url(base_url, args.db_name)
    database_recreate(base_url, args.db_name)
    env = child_env(db_url)
    env.pop("DB_POOL_MAX_SIZE", None)
    env.update(CELERY_TASK_ALWAYS_EAGER="1", DRY_RUN="1", PROMETHEUS_MULTIPROC_DIR="off")
    if args.mode in ("task", "batch", "worker") and not os.environ.get("REDIS_URL"):
        print(json.dumps({"name": f"bar_cost_{args.mode}", "skipped": "needs REDIS_URL"}))
        return 0
    if args.mode == "worker":
        env.update(CELERY_TASK_ALWAYS_EAGER="0", BAR_CLOSE_SHARDS="1")
        name, child_args = "bar_cost_worker", None
    elif args.mode in ("task", "batch"):
        counts = (args.symbols, args.minutes, args.warmup)
        child_args = [__file__, f"--run-{args.mode}", *(str(n) for n in counts)]
        name = f"bar_cost_{args.mode}"
        if args.profile:
            env["BAR_COST_PROFILE_DIR"] = str(Path(args.profile).resolve())
    else:
        env.pop("REDIS_URL", None)  # the pipeline alone: no channel layer, no broker
        child_args = [__file__, "--run", str(args.bars)]
        name = "bar_cost"
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        if child_args is None:
            result = run_worker(env, args.symbols, args.minutes, args.warmup)
        else:
            child = subprocess.run(
                [sys.executable, *child_args],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        database_recreate(base_url, args.db_name, drop_only=True)
    load = os.getloadavg()[0]
    print(json.dumps({"name": name, **result, "loadavg_1m": round(load, 2)}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--run":
        print(json.dumps(run(int(sys.argv[2]))))
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "--seed-worker":
        seed_worker(int(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    if len(sys.argv) == 5 and sys.argv[1] == "--run-task":
        print(json.dumps(run_task(*(int(v) for v in sys.argv[2:]))))
        sys.exit(0)
    if len(sys.argv) == 5 and sys.argv[1] == "--run-batch":
        print(json.dumps(run_batch(*(int(v) for v in sys.argv[2:]))))
        sys.exit(0)
    sys.exit(main())
