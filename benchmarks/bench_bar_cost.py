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
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import bench_database_url, child_env, database_recreate  # noqa: E402


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


def run_task(symbols_n: int, minutes: int, warmup: int) -> dict:
    """--mode task in the child: N symbols' bars through the bar-close task, minute by minute."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from autotrader_site.clock import MarketClock
    from marketdata.replay import synthetic_sessions
    from marketdata.services import bars_upsert
    from trading.tasks import on_bar_closed

    sessions = {}
    for i in range(symbols_n):
        symbol = f"U{i:03d}"
        bars = synthetic_sessions(
            symbol=symbol, sessions=2, seed=100 + i, end=date(2026, 3, 6), start_price=50 + i
        )
        sessions[symbol] = bars
        bars_upsert(bars=bars[:390])
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=200)
    parser.add_argument("--db-name", default="autotrader_bench_bar_cost")
    parser.add_argument("--mode", choices=["pipeline", "task"], default="pipeline")
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
    if args.mode == "task":
        if not os.environ.get("REDIS_URL"):
            print(json.dumps({"name": "bar_cost_task", "skipped": "needs REDIS_URL"}))
            return 0
        counts = (args.symbols, args.minutes, args.warmup)
        child_args = [__file__, "--run-task", *(str(n) for n in counts)]
        name = "bar_cost_task"
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
    if len(sys.argv) == 5 and sys.argv[1] == "--run-task":
        print(json.dumps(run_task(*(int(v) for v in sys.argv[2:]))))
        sys.exit(0)
    sys.exit(main())
