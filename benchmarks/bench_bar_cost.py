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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=200)
    parser.add_argument("--db-name", default="autotrader_bench_bar_cost")
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
    env.pop("REDIS_URL", None)  # the pipeline alone: no channel layer, no broker
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        child = subprocess.run(
            [sys.executable, __file__, "--run", str(args.bars)],
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
    print(json.dumps({"name": "bar_cost", **result, "loadavg_1m": round(load, 2)}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--run":
        print(json.dumps(run(int(sys.argv[2]))))
        sys.exit(0)
    sys.exit(main())
