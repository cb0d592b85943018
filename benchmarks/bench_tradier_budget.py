"""Request budget benchmark: 4 worker processes sharing one Tradier token through the Redis
budget, against the local fake (real HTTP) enforcing Tradier's production limits per 60 s
interval (trading 60, standard 120, market data 120) with X-Ratelimit-* headers.

    REDIS_URL=redis://127.0.0.1:6379/N python benchmarks/bench_tradier_budget.py [--seconds 65]

Every worker runs three threads sending as fast as the budget lets them: trading calls
(modifies = critical, order POSTs = entries), standard reads (orders) and market reads
(quotes). Reported: requests per minute per endpoint class as the fake counted them, 429s
(goal 0), and the budget wait of each priority (p50/p99: critical calls should wait least).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")

LIMITS = {"trading": 60, "standard": 120, "market": 120}


def worker(base_url: str, account: str, prefix: str, seconds: float, queue) -> None:
    import django

    django.setup()
    from marketdata.clients.tradier_budget import (
        CRITICAL,
        ENTRY,
        READ,
        BudgetConfig,
        RequestBudget,
        redis_client,
    )
    from marketdata.clients.tradier_http import TradierError, TradierHTTP

    waits: dict[str, list[float]] = {"critical": [], "entry": [], "read": []}

    class Recording(RequestBudget):
        def acquire(self, klass, priority, *, max_wait=None):
            waited = super().acquire(klass, priority, max_wait=max_wait)
            waits[{CRITICAL: "critical", ENTRY: "entry", READ: "read"}[priority]].append(waited)
            return waited

    budget = Recording(
        BudgetConfig(limits=dict(LIMITS), max_wait_sec=120.0, prefix=prefix), redis_client()
    )
    orders = f"accounts/{account}/orders"
    errors = [0]
    end = time.monotonic() + seconds

    def trading() -> None:
        http = TradierHTTP(base_url=base_url, token="test-token", max_retries=0, budget=budget)
        n = 0
        while time.monotonic() < end:
            n += 1
            try:
                if n % 2:  # a protective change (modify of a resting order): critical
                    http.put(f"{orders}/1", endpoint="orders.modify", data={"stop": "1.00"})
                else:
                    form = {
                        "class": "equity",
                        "symbol": "SPY",
                        "side": "buy",
                        "quantity": "1",
                        "type": "limit",
                        "price": "1.00",
                        "duration": "day",
                        "tag": f"bench-{uuid.uuid4().hex[:10]}",
                    }
                    http.post(orders, endpoint="orders.create", data=form)
            except TradierError:
                errors[0] += 1  # the modify of a missing order answers 404: still an answer

    def reads(path: str, endpoint: str, params: dict) -> None:
        http = TradierHTTP(base_url=base_url, token="test-token", max_retries=0, budget=budget)
        while time.monotonic() < end:
            http.get(path, endpoint=endpoint, params=params)

    threads = [
        threading.Thread(target=trading),
        threading.Thread(target=reads, args=(orders, "orders.list", {"includeTags": "true"})),
        threading.Thread(target=reads, args=("markets/quotes", "quotes", {"symbols": "SPY"})),
    ]
    began = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put({"waits": waits, "errors": errors[0], "began": began, "ended": time.time()})


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=65.0)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL"):
        print("REDIS_URL is required (the budget lives in Redis)", file=sys.stderr)
        return 2
    from tests.trading.fake_tradier import FakeTradier

    fake = FakeTradier(account="VABENCH01", limits=dict(LIMITS), window_sec=60.0)
    base_url = fake.serve_http()
    prefix = f"autotrader:bench:budget:{uuid.uuid4().hex}"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(base_url, fake.account, prefix, args.seconds, queue))
        for _ in range(args.workers)
    ]
    for p in procs:
        p.start()
    reports = [queue.get(timeout=args.seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    elapsed = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
    fake.close()
    waits = {k: [w for r in reports for w in r["waits"][k]] for k in ("critical", "entry", "read")}
    load = os.getloadavg()[0]
    result = {
        "name": "tradier_budget",
        "workers": args.workers,
        "seconds": round(elapsed, 1),
        "limits_per_min": LIMITS,
        "served_per_min": {k: round(v * 60 / elapsed, 1) for k, v in fake.served.items()},
        "served": dict(fake.served),
        "throttled_429": sum(fake.throttled.values()),
        "wait_sec": {
            k: {"n": len(v), "p50": pct(v, 0.5), "p99": pct(v, 0.99)} for k, v in waits.items()
        },
        "median_wait_ratio_read_vs_critical": (
            round(
                statistics.median(waits["read"]) / max(statistics.median(waits["critical"]), 1e-6),
                1,
            )
            if waits["read"] and waits["critical"]
            else None
        ),
        "answer_errors": sum(r["errors"] for r in reports),
        "load_1m": round(load, 2),
    }
    print(json.dumps(result))
    return 0 if result["throttled_429"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
