"""Scenario: a Celery worker takes a steady stream of signal → order flows (fake Tradier) while
its PostgreSQL connections are killed (`pg_terminate_backend`) every few seconds and, with
`restart=True`, PostgreSQL itself is restarted (`pg_ctl restart -m fast`) — on a cluster the
scenario starts itself (tests/faults/own_servers.py: its own initdb, its own port), never the
shared server. Figures: how long until the next flow completes after each kill/restart (goal
≤ 30 s), flows lost, fills lost (broker fills the ledger does not hold after
reconciliation), position mismatches.

Run as its own process like the crash scenario (`python -m tests.faults.db_faults`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

from tests.faults.crash_faults import ROOT, database_ensure, database_reset, faults_urls, worker_env


def _terminate_backends(dbname: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [dbname],
        )
        return int(cursor.fetchone()[0])


def _pg_restart() -> bool:
    """Restart the scenario's own cluster (FAULTS_PG_OWN, set by run_db_faults)."""
    from tests.faults.own_servers import OwnPostgres

    spec = os.environ.get("FAULTS_PG_OWN")
    if not spec:
        raise RuntimeError("a PostgreSQL restart needs the scenario's own server")
    try:
        OwnPostgres.attach(spec).restart()
    except (RuntimeError, subprocess.TimeoutExpired):
        return False
    return True


def _worker_log():
    """FAULTS_WORKER_LOG=<path>: the worker's log goes there (to see why a flow was lost)."""
    path = os.environ.get("FAULTS_WORKER_LOG")
    return open(path, "w") if path else subprocess.DEVNULL  # noqa: SIM115 - the worker's life


def _redis_restart() -> bool:
    """Restart the scenario's own Redis (FAULTS_REDIS_OWN, set by run_db_faults)."""
    from tests.faults.own_servers import OwnRedis

    try:
        OwnRedis.attach(os.environ["FAULTS_REDIS_OWN"]).restart(down_sec=2.0)
    except (KeyError, RuntimeError, subprocess.TimeoutExpired):
        return False
    return True


def run_driver(
    *, flows: int, kills: int, restart: bool, redis_restart: bool = False, seed: int = 5
) -> dict:
    database_reset()
    from django.db import connection, connections
    from django.db.models import Count, Sum

    dbname = connection.settings_dict["NAME"]

    from celery import Celery

    from strategies.models import Signal
    from tests.faults.broker_faults import NOW, book_compare, signal_make, tradier_settings
    from tests.faults.fake_tradier import FakeTradier

    redis_url = os.environ["REDIS_URL"]
    queue = f"faults-db-{uuid.uuid4().hex[:12]}"  # ours alone: no flush of a shared db
    rng = random.Random(seed)
    started = time.monotonic()
    # No quotes → market entries that fill at once: every flow produces a fill to keep.
    with FakeTradier(quotes=False) as fake, tradier_settings(fake.base_url):
        producer = Celery("faults-producer", broker=redis_url, set_as_current=False)
        env = worker_env(redis_url=redis_url, tradier_url=fake.base_url)
        # no worker is killed here: redelivery is not what is tested, and a decision slowed by a
        # loaded machine must not be redelivered while it still runs (finding 13)
        env["CELERY_VISIBILITY_TIMEOUT_SEC"] = "60"
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "autotrader_site",
                "worker",
                "-I",
                "tests.faults.crash_tasks",
                "-c",
                "2",
                "-Q",
                queue,
                "-n",
                f"{queue}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO" if os.environ.get("FAULTS_WORKER_LOG") else "ERROR",
            ],
            cwd=ROOT,
            env=env,
            stdout=_worker_log(),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        signals = [signal_make(n, rng) for n in range(flows)]
        kill_at = sorted(
            rng.sample(range(flows // 5, flows), k=min(kills, max(1, flows - flows // 5)))
        )
        restarts_at = {flows // 3, (2 * flows) // 3} if restart else set()
        redis_restarts_at = {flows // 2} if redis_restart else set()
        events: list[tuple[str, float]] = []
        try:
            # wait for the worker: the first flow completes
            for n, sig in enumerate(signals):
                now = NOW + timedelta(seconds=5 * n)
                producer.send_task(
                    "faults.signal_handle", args=[sig.pk, now.isoformat(), False], queue=queue
                )
                if n == 0:
                    deadline = time.monotonic() + 90
                    while (
                        not Signal.objects.exclude(outcome="generated").exists()
                        and time.monotonic() < deadline
                    ):
                        time.sleep(0.1)
                if n % 5 == 4:  # the beat's exit tick: syncs fills, places stops, exits
                    producer.send_task("trading.exits_tick", queue=queue)
                if n in kill_at:
                    killed = _terminate_backends(dbname)
                    events.append((f"terminate:{killed}", time.time()))
                if n in redis_restarts_at:
                    ok = _redis_restart()
                    events.append((f"redis_restart:{ok}", time.time()))
                if n in restarts_at:
                    connections.close_all()
                    ok = _pg_restart()
                    events.append((f"pg_restart:{ok}", time.time()))
                    connections.close_all()
                time.sleep(0.15)
            deadline = time.monotonic() + 60 + flows
            last, since = -1, time.monotonic()
            while time.monotonic() < deadline:
                connections.close_all()
                pending = Signal.objects.filter(outcome="generated").count()
                if not pending:
                    break
                if pending != last:
                    last, since = pending, time.monotonic()
                elif time.monotonic() - since > 15:  # no progress: what is left is lost
                    break
                time.sleep(0.5)
            time.sleep(6)  # redelivered tasks (visibility timeout 5 s)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        connections.close_all()
        # the beat's scan (not running here): signals a vanished task left undecided are
        # decided while fresh, else marked failed (SIGNAL_STALE) — counted apart, never hidden
        from django.conf import settings as django_settings
        from django.utils import timezone

        from trading.pipeline import signals_resume

        # each undecided signal at the market time the beat's scan would have found it
        found_after = timedelta(
            minutes=1,
            seconds=django_settings.SIGNAL_RESUME_AFTER_SEC + django_settings.SCAN_INTERVAL_SEC,
        )
        swept = {"resumed": 0, "stale": 0}
        left = Signal.objects.filter(outcome="generated").order_by("bar_ts")
        for bar_ts in list(left.values_list("bar_ts", flat=True).distinct()):
            counts = signals_resume(
                now=bar_ts + found_after, wall_now=timezone.now() + timedelta(days=1)
            )
            swept = {k: swept[k] + counts[k] for k in swept}
        recoveries = []
        for _, at in events:
            from datetime import UTC, datetime

            after = (
                Signal.objects.exclude(outcome="generated")
                .filter(updated_at__gt=datetime.fromtimestamp(at, tz=UTC))
                .order_by("updated_at")
                .values_list("updated_at", flat=True)
                .first()
            )
            recoveries.append(None if after is None else round(after.timestamp() - at, 2))

        from trading.brokers import broker_override
        from trading.brokers.tradier import TradierBroker
        from trading.models import Fill, OrderRole
        from trading.reconciliation import reconcile_run

        broker = TradierBroker.from_settings()
        broker_override(broker)
        try:
            reconciled = reconcile_run(now=NOW + timedelta(seconds=5 * flows + 120), broker=broker)
        finally:
            broker_override(None)
        figures = book_compare(fake)
        broker_filled = sum(
            int(leg.get("exec_quantity") or 0)
            for order in fake.state.orders.values()
            for leg in (order.get("leg") or [order])
        )
        ledger_filled = (
            Fill.objects.exclude(order__role=OrderRole.EXTERNAL).aggregate(q=Sum("qty"))["q"] or 0
        )
        outcomes = dict(Signal.objects.values_list("outcome").annotate(n=Count("id")))
    known = [r for r in recoveries if r is not None]
    return {
        "flows": flows,
        "connection_kills": sum(1 for e, _ in events if e.startswith("terminate")),
        "backends_terminated": sum(
            int(e.split(":")[1]) for e, _ in events if e.startswith("terminate")
        ),
        "pg_restarts": [e for e, _ in events if e.startswith("pg_restart")],
        "redis_restarts": [e for e, _ in events if e.startswith("redis_restart")],
        "recovery_seconds_max": max(known) if known else None,
        "not_recovered": sum(1 for r in recoveries if r is None),
        "outcomes": outcomes,
        "flows_lost": outcomes.get("generated", 0),  # never decided, even by the scan
        "flows_resumed_by_scan": swept["resumed"],  # their task vanished; the scan decided
        "flows_stale_by_scan": swept["stale"],  # their task vanished; too late to trade
        # the journal says `approved` at the end: it does not tell what happened to the order
        "signals_mislabelled": outcomes.get("approved", 0),
        "fills_lost": max(0, broker_filled - ledger_filled),  # shares
        "broker_filled_qty": broker_filled,
        "ledger_filled_qty": ledger_filled,
        "orders_orphan": figures["lost_orders"] + figures["unsettled_orders"],
        "orders_duplicate": figures["doubled_orders"],
        "positions_mismatch": figures["position_mismatches"],
        "reconcile_ok": reconciled["ok"],
        "seconds": round(time.monotonic() - started, 1),
    }


def run_db_faults(
    *,
    flows: int,
    kills: int,
    restart: bool = False,
    redis_restart: bool = False,
    timeout: float = 1800,
) -> dict:
    """Run the driver in its own process: on the shared server's faults database, or — with
    `restart` — on a PostgreSQL cluster started here for the scenario alone; with
    `redis_restart`, Redis (broker, cache, channel layer) is a server of its own too."""
    from contextlib import ExitStack

    from tests.faults.own_servers import OwnPostgres, OwnRedis

    db_url, redis_url = faults_urls()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "autotrader_site.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("TEST_DB_NAME", None)
    with ExitStack() as stack:
        if restart:
            own = stack.enter_context(OwnPostgres())
            db_url = own.url("autotrader_faults")
            env["FAULTS_PG_OWN"] = own.spec
        else:
            database_ensure(db_url)
        if redis_restart:
            own_redis = stack.enter_context(OwnRedis())
            env["REDIS_URL"] = own_redis.url(0)
            env["FAULTS_REDIS_OWN"] = own_redis.spec
        env["DATABASE_URL"] = db_url
        cmd = [sys.executable, "-m", "tests.faults.db_faults", "--flows", str(flows)]
        cmd += ["--kills", str(kills)] + (["--restart"] if restart else [])
        cmd += ["--redis-restart"] if redis_restart else []
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"db driver failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=30)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--restart", action="store_true")
    parser.add_argument("--redis-restart", action="store_true")
    args = parser.parse_args()
    figures = run_driver(
        flows=args.flows,
        kills=args.kills,
        restart=args.restart,
        redis_restart=args.redis_restart,
    )
    print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
