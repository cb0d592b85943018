"""Dashboard push benchmark: from a committed fill to the panel on an open dashboard socket.

A scratch PostgreSQL database next to DATABASE_URL's (dropped at the end) and the Redis channel
layer of REDIS_URL (required: the push path crosses processes through Redis). The dashboard's
consumer (`/ws/live/`) runs in this process's event loop, as in a web worker; a writer thread
commits one entry fill (order + fill + position, one transaction) every --interval seconds, as
the trading stage does. Measured per fill: commit returned -> the panel carrying that fill
received on the socket. Also: database queries made by the open page over --idle seconds of
quiet (goal 0; the polling page made ~9 per second).

Last line: {"name": "dashboard_push", "fills", "p50_ms", "p99_ms", "max_ms", "idle_queries"}.
Goal: p99 <= 200 ms.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python benchmarks/bench_dashboard.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import bench_database_url, child_env, database_recreate  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fill_commit(n: int) -> tuple[int, float]:
    from django.db import connections, transaction
    from django.utils import timezone

    from trading.models import Fill, Order, Position

    with transaction.atomic():
        now = timezone.now()
        order = Order.objects.create(
            tag=f"bench-dash-{n}",
            symbol="SPY",
            side="buy",
            qty=10,
            order_type="market",
            status="filled",
            filled_qty=10,
            avg_fill_price=Decimal("500.00"),
            created_at=now,
        )
        fill = Fill.objects.create(
            order=order,
            broker_fill_id=f"bench-dash-{n}",
            symbol="SPY",
            side="buy",
            qty=10,
            price=Decimal("500.00"),
            ts=now,
        )
        Position.objects.update_or_create(
            symbol="SPY", defaults={"qty": 10 * (n + 1), "avg_price": Decimal("500.00")}
        )
    committed = time.perf_counter()
    connections.close_all()
    return fill.pk, committed


async def _scenario(args) -> dict:
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model
    from django.db import connections

    from analytics.live import LiveConsumer

    user = await database_sync_to_async(get_user_model().objects.create_user)(
        username="bench-dash", password="not-used"
    )
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from(timeout=10)
    assert hello["mode"] == "push", hello
    await communicator.receive_json_from(timeout=10)  # the first panel

    # Idle: the consumer's database calls run on the thread below (database_sync_to_async).
    conn = await database_sync_to_async(lambda: connections["default"])()
    conn.force_debug_cursor = True
    before = len(conn.queries_log)
    await asyncio.sleep(args.idle)
    idle_queries = len(conn.queries_log) - before
    conn.force_debug_cursor = False

    committed: dict[int, float] = {}
    latencies: list[float] = []

    def writer():
        for n in range(args.fills):
            pk, at = _fill_commit(n)
            committed[pk] = at
            time.sleep(args.interval)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    seen: set[int] = set()
    deadline = time.perf_counter() + args.fills * args.interval + 30
    while len(seen) < args.fills and time.perf_counter() < deadline:
        message = await communicator.receive_json_from(timeout=30)
        received = time.perf_counter()
        if message.get("type") != "panel":
            continue
        for fill in message["fills"]:
            pk = fill["id"]
            if pk in committed and pk not in seen:
                seen.add(pk)
                latencies.append((received - committed[pk]) * 1000)
    thread.join(timeout=30)
    await communicator.disconnect()
    latencies.sort()
    return {
        "fills": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 1),
        "max_ms": round(latencies[-1], 1),
        "idle_queries": idle_queries,
        "idle_s": args.idle,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--idle", type=float, default=3.0)
    parser.add_argument("--db-name", default="autotrader_bench_dashboard")
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:  # the child: settings point at the scratch database
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
        django.setup()
        from asgiref.sync import async_to_sync

        load = os.getloadavg()[0]
        result = async_to_sync(_scenario)(args)
        print(json.dumps({"name": "dashboard_push", **result, "loadavg_1m": round(load, 2)}))
        return 0

    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")) or not os.environ.get("REDIS_URL"):
        print(json.dumps({"name": "dashboard_push", "skipped": "needs DATABASE_URL and REDIS_URL"}))
        return 0
    db_url = bench_database_url(base_url, args.db_name)
    database_recreate(base_url, args.db_name)
    env = child_env(db_url)
    env.pop("DB_POOL_MAX_SIZE", None)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        child = subprocess.run(
            [sys.executable, __file__, "--run", *sys.argv[1:]],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        log(child.stderr[-2000:])
        print(child.stdout.strip().splitlines()[-1])
    finally:
        database_recreate(base_url, args.db_name, drop_only=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
