"""Walk-forward benchmark: the full-size runs of issue 16 on the shared sessions, fanned out
over a REAL Celery worker on Redis, once with 1 worker process and once with 2.

Runs, each 5 folds x 27 candidates (135 backtests + the chord's summary):
- SPY, January and March 2011 (43 sessions): rolling 15 training / 5 test sessions;
- ES, January to April 2020 (77 sessions): rolling 30 training / 9 test sessions;
grid RISK_STOP_ATR_MULTIPLIER x TARGET_ONE_ATR_MULTIPLIER x TRADE_TIMEOUT_MIN (3 x 3 x 3).
Each data set is run with a worker of concurrency 1, then 2 (the same plan: the summaries must
be equal, else the bench fails). Needs DATABASE_URL (migrated, e.g. autotrader_<you>) and
REDIS_URL; the worker consumes a private queue only. Do not run the test suite on the same
REDIS_URL meanwhile: its cache fixture clears that Redis database, queued tasks included.

`--quick` (the figures of a busy machine): the same grid and 5 folds on fewer sessions: SPY
January 2011 (20 sessions), rolling 5 / 3; ES, its first 35 New York dates (to 2020-02-19, a
slice written to a temporary file: 33 sessions, as 2020-01-20 and 2020-02-17 are exchange
holidays: the file's short sessions on them are not regular sessions), rolling 8 / 5.

Prints one JSON line per data set (wall seconds for 1 and 2 workers, their ratio, and the
report's figures: IS/OOS expectancy per fold, PBO, deflated Sharpe), then a last summary line.

    .venv/bin/python benchmarks/bench_walkforward.py [--only spy|es] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
SHARED = ROOT.parent / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")

GRID = {
    "RISK_STOP_ATR_MULTIPLIER": ["1.0", "1.5", "2.0"],
    "TARGET_ONE_ATR_MULTIPLIER": ["1.0", "1.5", "2.0"],
    "TRADE_TIMEOUT_MIN": ["20", "45", "90"],
}
SETS = {  # symbol, files, training and test sessions, first N sessions only (0: all)
    "spy": ("SPY", [SHARED / "SPY_1m_2011-01.csv", SHARED / "SPY_1m_2011-03.csv"], 15, 5, 0),
    "es": ("ES", [SHARED / "ES_1m_2020-01_04.csv"], 30, 9, 0),
}
QUICK = {
    "spy": ("SPY", [SHARED / "SPY_1m_2011-01.csv"], 5, 3, 0),
    "es": ("ES", [SHARED / "ES_1m_2020-01_04.csv"], 8, 5, 35),
}


def _first_sessions(path: Path, n: int, out: Path) -> Path:
    """The bars of the first `n` New York dates of a CSV file, written to `out`."""
    import csv
    from datetime import datetime
    from zoneinfo import ZoneInfo

    ny, seen = ZoneInfo("America/New_York"), []
    with path.open(newline="") as src, out.open("w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow(next(reader))
        for row in reader:
            day = datetime.fromisoformat(row[0].replace("Z", "+00:00")).astimezone(ny).date()
            if day not in seen:
                if len(seen) == n:
                    break
                seen.append(day)
            writer.writerow(row)
    return out


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every reaped descendant
    return usage.ru_utime + usage.ru_stime


def _run(plan, *, concurrency: int, timeout: float = 1800) -> tuple[float, float, object]:
    """Wall seconds of the run, CPU seconds of the worker (pool included), the stored run."""
    from django.db import connection

    from analytics.models import WalkForwardRun
    from analytics.walkforward import walkforward_start
    from tests.analytics.celery_worker import celery_worker

    queue = f"wf-bench-{uuid.uuid4().hex[:10]}"
    cpu_before = _children_cpu()
    with celery_worker(queue=queue, database=connection.settings_dict["NAME"],
                       concurrency=concurrency) as worker:  # fmt: skip
        time.sleep(3.0)  # let the worker boot before the clock starts
        started = time.perf_counter()
        run = walkforward_start(plan, queue=queue)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and worker.poll() is None:
            status = WalkForwardRun.objects.filter(pk=run.pk).values_list("status", flat=True)[0]
            if status != "running":
                break
            time.sleep(0.2)
        wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before  # the worker has exited: its CPU is counted
    run = WalkForwardRun.objects.get(pk=run.pk)
    if run.status == "running":
        raise SystemExit(f"walk-forward #{run.pk} still running after {wall:.0f}s")
    if run.status != "done":
        raise SystemExit(f"walk-forward #{run.pk} ended {run.status} after {wall:.0f}s")
    return wall, cpu, run


def _figures(summary: dict) -> dict:
    over = summary["overfitting"]
    return {
        "per_fold": [
            {
                "fold": f["fold"],
                "test": f["test"],
                "chosen": f["chosen"],
                "is_expectancy": f["in_sample"]["expectancy"],
                "oos_expectancy": f["out_of_sample"]["expectancy"],
                "is_trades": f["in_sample"]["trades"],
                "oos_trades": f["out_of_sample"]["trades"],
                "oos_pnl": f["out_of_sample"]["total_pnl"],
                "oos_rank": f"{f['oos_rank']:g}/{f['oos_rank_of']}",
            }
            for f in summary["folds"]
        ],
        "oos_total_pnl": summary["oos_total_pnl"],
        "pbo": over["pbo"]["pbo"],
        "pbo_splits": over["pbo"]["splits"],
        "deflated_sharpe": over["deflated_sharpe"]["dsr"],
        "best_sharpe_per_session": over["deflated_sharpe"]["sharpe"],
        "sr0": over["deflated_sharpe"]["sharpe_zero"],
        "selected": over["selected"],
        "stability": {k: v["share"] for k, v in summary["stability"].items()},
    }


def main() -> int:
    import signal

    import django

    def _interrupt(signum, frame):
        raise KeyboardInterrupt  # unwind, so the worker this bench started is stopped too

    signal.signal(signal.SIGTERM, _interrupt)

    django.setup()
    from analytics.sweeps import grid_parse
    from analytics.walkforward import WalkForwardPlan

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=sorted(SETS), default="")
    parser.add_argument("--quick", action="store_true", help="fewer sessions (see the top)")
    args = parser.parse_args()
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="bench-wf-"))
    lines = []
    for name, (symbol, files, train, test, first) in (QUICK if args.quick else SETS).items():
        if args.only and name != args.only:
            continue
        if not all(f.is_file() for f in files):
            print(json.dumps({"name": f"walkforward_{name}", "skipped": "shared data absent"}))
            continue
        if first:
            files = [_first_sessions(files[0], first, scratch / f"{name}.csv")]
        grid = grid_parse([f"{k}={','.join(v)}" for k, v in GRID.items()])
        base = {"data": ",".join(str(f) for f in files), "symbols": [symbol], "mode": "fast"}
        plan = WalkForwardPlan(grid=grid, base=base, train=train, test=test)
        load = os.getloadavg()[0]
        one, cpu1, run1 = _run(plan, concurrency=1)
        two, cpu2, run2 = _run(plan, concurrency=2)
        if run1.summary["folds"] != run2.summary["folds"]:
            raise SystemExit(f"{name}: 1 and 2 workers disagree")
        line = {
            "name": f"walkforward_{name}",
            "quick": args.quick,
            "sessions": run1.summary["overfitting"]["sessions"],
            "train_test": [train, test],
            "folds": len(run1.folds),
            "candidates": len(run1.candidates),
            "cells": run1.summary["cells"],
            "wall_s_1_worker": round(one, 1),
            "wall_s_2_workers": round(two, 1),
            "ratio": round(one / two, 2),
            "worker_cpu_s_1": round(cpu1, 1),  # includes the worker's start-up and shutdown
            "worker_cpu_s_2": round(cpu2, 1),
            "load_1min_at_start": round(load, 2),
            **_figures(run1.summary),
        }
        lines.append(line)
        print(json.dumps(line), flush=True)
    print(json.dumps({
        "name": "walkforward",
        "runs": [x["name"] for x in lines],
        "ratio": {x["name"]: x["ratio"] for x in lines},
        "wall_s_1_worker": {x["name"]: x["wall_s_1_worker"] for x in lines},
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
