"""Scenario: real Celery worker processes (Redis broker, PostgreSQL database of their own) take
signal → order flows against the fake Tradier and are SIGKILLed (the whole process group, as a
machine crash) at random points; each restart runs the start-up reconciliation. At the end the
broker's book is compared with the ledger: duplicate orders, orphan orders, position and state
mismatches, and flows that never completed.

Run as its own process (`python -m tests.faults.crash_faults --flows N --kills K`): it owns
the database named by FAULTS_DB_NAME (default autotrader_faults, created if missing) and Redis
db FAULTS_REDIS_DB (default 7), and prints one JSON object as its last line.
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
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
TABLES_MODELS = (
    "trading.Fill",
    "trading.OrderEvent",
    "trading.Order",
    "trading.Trade",
    "trading.Position",
    "trading.AccountSnapshot",
    "trading.AuditEvent",
    "trading.WorkerHeartbeat",
    "strategies.Signal",
    "risk.TradingState",
    "risk.TradingStateChange",
)


# A killed worker's task comes back after the 5 s visibility timeout; the lease on its
# unsent entry must have run out by then for the redelivered task to resume it
# (trading.services.entry_resume). The scenario's signals carry bar times (2025-01-02) months
# before the market time they are decided at (2025-09-19), so the freshness limit is lifted
# here; tests/trading/test_entry_resume.py covers SIGNAL_STALE.
RESUME_ENV = {"ENTRY_RESUME_LEASE_SEC": "2", "SIGNAL_MAX_DELAY_SEC": str(10 * 365 * 86_400)}


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def faults_urls() -> tuple[str, str]:
    """(database URL, Redis URL) the scenario owns, derived from DATABASE_URL / REDIS_URL."""
    db = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/autotrader"
    redis = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/7"
    # One database per test database name, so parallel `make test` runs do not collide.
    suffix = os.environ.get("TEST_DB_NAME", "")
    name = os.environ.get("FAULTS_DB_NAME") or (
        f"autotrader_faults_{suffix}" if suffix else "autotrader_faults"
    )
    return _with_path(db, "/" + name), _with_path(
        redis, "/" + os.environ.get("FAULTS_REDIS_DB", "7")
    )


def database_ensure(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    admin = _with_path(url, "/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def worker_env(*, redis_url: str, tradier_url: str) -> dict[str, str]:
    """Environment of a real Celery worker trading live against the fake Tradier."""
    env = {
        **os.environ,
        "DRY_RUN": "0",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "CELERY_VISIBILITY_TIMEOUT_SEC": "5",
        **RESUME_ENV,
        "TRADIER_BASE_URL": tradier_url,
        "TRADIER_ACCESS_TOKEN": "fake-token",
        "TRADIER_ACCOUNT_ID": "VA00000000",
        "TRADIER_TIMEOUT_SEC": "2",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def database_reset() -> None:
    """Set up Django in this driver process, migrate the faults database and empty the ledger."""
    import django

    django.setup()
    from django.apps import apps
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        tables = ", ".join(apps.get_model(m)._meta.db_table for m in TABLES_MODELS)
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


# --all-trade: equity caps out of the way, and a quote that takes 0.25 s (a bracket's entry is
# priced from a quote after the claim, before the POST): kills land between claim and POST
ALL_TRADE = {"cash": Decimal(10**9), "buying_power": Decimal(10**9), "quote_delay_sec": 0.25}


def _ticker(n: int) -> str:
    """A symbol of its own for flow n (AAA, AAB, ...): no flow's idea duplicates another's."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(letters[(n // 26**k) % 26] for k in (2, 1, 0))


def run_driver(
    *, flows: int, kills: int, seed: int = 3, worker_concurrency: int = 2, all_trade: bool = False
) -> dict:
    """Runs inside a process whose DATABASE_URL is the faults database. `all_trade`: every
    flow can be approved (a symbol each, buying power and equity for all, no daily-loss
    limit), so the kills land in the entries' sends; otherwise four symbols, the recorded
    account's buying power and the daily-loss limit let about two flows trade and block the
    rest (DUPLICATE_EXPOSURE, QTY_ZERO, DAILY_LOSS_LIMIT)."""
    database_reset()
    from django.db.models import Count

    from tests.faults.broker_faults import NOW, book_compare, signal_make, tradier_settings
    from tests.faults.fake_tradier import FakeTradier

    redis_url = os.environ["REDIS_URL"]
    queue = f"faults-crash-{uuid.uuid4().hex[:12]}"  # ours alone: no flush of a shared db
    rng = random.Random(seed)
    started = time.monotonic()
    resume = {"ENTRY_RESUME_LEASE_SEC": 2.0, "SIGNAL_MAX_DELAY_SEC": 10 * 365 * 86_400}
    with (
        FakeTradier(answer_delay_sec=0.25, **(ALL_TRADE if all_trade else {})) as fake,
        tradier_settings(fake.base_url, **resume),
    ):
        from celery import Celery

        producer = Celery("faults-producer", broker=redis_url, set_as_current=False)
        signals = [signal_make(n, rng) for n in range(flows)]
        if all_trade:
            for n, sig in enumerate(signals):
                sig.symbol = sig.execution_symbol = _ticker(n)
                sig.save(update_fields=["symbol", "execution_symbol"])
        for n, sig in enumerate(signals):
            now = NOW + timedelta(seconds=5 * n)
            producer.send_task(
                "faults.signal_handle", args=[sig.pk, now.isoformat(), n % 2 == 1], queue=queue
            )
        env = worker_env(redis_url=redis_url, tradier_url=fake.base_url)
        if all_trade:  # no daily-loss limit either (live trades at their stops count)
            env["RISK_MAX_DAILY_LOSS_R"] = "0"

        def worker_start(index: int) -> subprocess.Popen:
            cmd = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "autotrader_site",
                "worker",
                "-I",
                "tests.faults.crash_tasks",
                "-P",
                "prefork",
                "-c",
                str(worker_concurrency),
                "-Q",
                queue,
                "-n",
                f"{queue}-{index}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "ERROR",
            ]
            return subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

        from strategies.models import Signal

        def done() -> int:
            return Signal.objects.exclude(outcome="generated").count()

        killed = 0
        kill_points: list[int] = []
        for index in range(kills):
            worker = worker_start(index)
            before = done()
            deadline = time.monotonic() + 60
            while done() == before and time.monotonic() < deadline and worker.poll() is None:
                time.sleep(0.05)  # wait until this worker makes progress
            # a kill soon after the worker's first progress lands mid-run (a flow takes ~0.25 s)
            time.sleep(rng.uniform(0.0, 0.25))
            kill_points.append(done())
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            killed += 1
        worker = worker_start(kills)
        # a bound on the wait for the last worker, not a speed requirement: at 1,000 flows on a
        # loaded machine (load 8) it decided about one flow a second and 120 + flows seconds cut
        # it off with 283 flows still queued
        deadline = time.monotonic() + 120 + 3 * flows
        stable_since = time.monotonic()
        last = -1
        while time.monotonic() < deadline:
            current = done()
            if current != last:
                last, stable_since = current, time.monotonic()
            quiet_for = time.monotonic() - stable_since
            if current == flows and quiet_for > 8:  # let redelivered tasks run out
                break
            if quiet_for > 60:  # no progress: what is left was lost (unfinished_flows)
                break
            time.sleep(0.2)
        os.killpg(worker.pid, signal.SIGTERM)  # warm shutdown
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()

        from django.test import override_settings

        from trading.brokers import broker_override
        from trading.brokers.tradier import TradierBroker
        from trading.models import Order, OrderRole
        from trading.reconciliation import reconcile_run

        # the settling reconciliation reads the whole book (one order per flow and the
        # brackets' legs) with a client timeout meant for it, not the scenario's 0.15 s
        with override_settings(TRADIER_TIMEOUT_SEC=10):
            broker = TradierBroker.from_settings()
        broker_override(broker)
        try:
            end = NOW + timedelta(seconds=5 * flows + 120)
            reconciled = reconcile_run(now=end, broker=broker)
        finally:
            broker_override(None)
        figures = book_compare(fake)
        outcomes = dict(Signal.objects.values_list("outcome").annotate(n=Count("id")))
        entries_per_signal = (
            Order.objects.filter(role=OrderRole.ENTRY)
            .exclude(broker_order_id="")
            .values("signal_id")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .count()
        )
        never_sent = Order.objects.filter(
            role=OrderRole.ENTRY, broker_order_id="", status="cancelled"
        ).count()
        from trading.models import OrderEvent

        resumed = (
            OrderEvent.objects.filter(order__role=OrderRole.ENTRY, cause__startswith="resumed")
            .values("order_id")
            .distinct()
            .count()
        )
    return {
        "flows": flows,
        "kills": killed,
        "kill_points": kill_points,
        "outcomes": outcomes,
        "unfinished_flows": outcomes.get("generated", 0),
        "duplicate_orders": figures["doubled_orders"] + entries_per_signal,
        "orphan_orders": figures["lost_orders"] + figures["unsettled_orders"],
        "position_mismatches": figures["position_mismatches"],
        "state_mismatches": figures["state_mismatches"],
        "mismatch_examples": figures["mismatch_examples"],
        "orphan_examples": figures["lost_examples"] + figures["unsettled_examples"],
        "entries_dropped_by_crash": never_sent,
        "entries_resumed": resumed,  # entries a killed attempt left unsent, sent or linked later
        "signals_mislabelled": outcomes.get("approved", 0),  # journal silent on the order
        "broker_orders": figures["broker_orders"],
        "reconcile_ok": reconciled["ok"],
        "reconcile_error": (reconciled.get("error") or "")[:300],
        "seconds": round(time.monotonic() - started, 1),
    }


def run_crash_faults(
    *, flows: int, kills: int, timeout: float = 3600, all_trade: bool = False
) -> dict:
    """Launch the driver in its own process (its own database) and return its figures."""
    db_url, redis_url = faults_urls()
    database_ensure(db_url)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "autotrader_site.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("TEST_DB_NAME", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.faults.crash_faults",
            "--flows",
            str(flows),
            "--kills",
            str(kills),
            *(["--all-trade"] if all_trade else []),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"crash driver failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=20)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--all-trade", action="store_true")
    args = parser.parse_args()
    print(
        json.dumps(
            run_driver(flows=args.flows, kills=args.kills, all_trade=args.all_trade), default=str
        )
    )


if __name__ == "__main__":
    main()
