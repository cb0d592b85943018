"""Protection benchmark: from an entry's fill at the broker to its protective stop accepted at
the broker, with the account event stream and with the polling fallback, on PostgreSQL/Redis
against the local fake Tradier over real HTTP and its websocket.

    DATABASE_URL=... REDIS_URL=... python benchmarks/bench_protection.py [--flows 200]

Each flow: a signal goes through the real pipeline (`signal_handle`: risk, trade, entry order),
the fake fills the entry (wall time t0), and the flow waits until the fake has accepted the
trade's stop (t1); t1 - t0 is both "fill -> protection accepted" and the time the filled
quantity spent without a working stop. The stop is then filled (the trade closes) so risk limits
never interfere. Stream mode: `run_account_stream`'s AccountStream in a thread applies the fill
event (the poll's apply path) and the ledger places the stop at once. Polling mode: no stream;
a poller runs the exit manager's tick every EXIT_MANAGER_INTERVAL_SEC as beat would.
The request budget is off and the fake unlimited here (bench_tradier_budget measures that).
Runs in a throw-away database `<name>_bench_protection`. Last line: one JSON object.

`--resting` (RESTING_TARGETS=1, stream only): each flow's signal has T1 and T2; after the entry
fills, the flow waits for both OCO pairs at the fake (the last pair's acceptance ends the time
any filled share was without a stop), then the tape touches T1 (the T1 limit fills; the T2
pair's stop leg must move to break-even by a modify, never be cancelled) and then T2. Reported:
entry fill -> all shares under a stop, T1 fill -> break-even stop at the broker, and the
seconds any filled quantity spent without a working stop at the broker, per flow.
`--load-procs N` runs N busy-looping processes for the whole run (the "loaded" figure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
os.environ["TRADIER_BUDGET_ENABLED"] = "0"
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("ENTRY_LIMIT_TIMEOUT_SEC", "3600")  # no escalation races in the flow
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)


def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 4)


def summary(values):
    return {
        "n": len(values),
        "p50": pct(values, 0.5),
        "p99": pct(values, 0.99),
        "max": round(max(values), 4) if values else None,
        "mean": round(statistics.fmean(values), 4) if values else None,
    }


class StreamThread:
    """`run_account_stream`'s AccountStream on its own event loop in a daemon thread."""

    def __init__(self, fake, broker, ws_url: str):
        from marketdata.clients.tradier_budget import redis_client
        from trading.account_stream import AccountStream, StreamConfig

        self.stream = AccountStream(
            StreamConfig(ws_url=ws_url, account=fake.account, confirm_sec=2.0),
            broker=broker,
            redis=redis_client(),
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self.stream.run()), daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stream.stop)
        self.thread.join(10)


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.002)
    return None


class Flows:
    def __init__(self, fake, config):
        self.fake = fake
        self.config = config
        self.i = 0
        self.streaming = True
        self.interval = 0.0
        self.rng = random.Random(7)

    @staticmethod
    def stop_of(trade) -> int | None:
        from trading.models import Order

        row = Order.objects.filter(trade=trade, role="stop").exclude(broker_order_id="").first()
        return int(row.broker_order_id) if row else None

    def one(self, timeout: float) -> float | None:
        from strategies.models import Signal
        from trading.models import Order, Trade
        from trading.pipeline import signal_handle

        self.i += 1
        now = T + timedelta(minutes=self.i % 300, seconds=self.i // 300)
        signal = Signal.objects.create(
            setup="EMA_CROSS",
            symbol="SPY",
            execution_symbol="SPY",
            bar_ts=now,
            entry_price=Decimal("450.00"),
            stop_price=Decimal("449.00"),
            target_one=None,
            target_two=None,
            features={"exec_atr": 1.0},
            outcome="generated",
        )
        outcome = signal_handle(signal=signal, now=now, config=self.config)
        if outcome != "submitted":
            raise RuntimeError(f"flow {self.i}: signal {outcome}: {signal.checks}")
        entry = Order.objects.get(signal=signal, role="entry")
        trade = Trade.objects.get(signal=signal)
        if not self.streaming:  # fills land at a random point of the poll interval
            time.sleep(self.rng.uniform(0, self.interval))
        t0 = time.time()
        self.fake.fill(int(entry.broker_order_id), price="450.00")
        stop_id = wait_for(lambda: self.stop_of(trade), timeout)
        if stop_id is None:
            return None
        latency = self.fake.created_wall[stop_id] - t0
        self.fake.fill(stop_id, price="449.00")
        if not self.streaming:  # close at once through the poll path, not at the next tick
            from trading.services import order_sync

            order_sync(order=Order.objects.get(broker_order_id=str(stop_id)), now=now)
        closed = wait_for(
            lambda: Trade.objects.filter(pk=trade.pk, status="closed").exists(), timeout
        )
        if not closed:
            from trading.models import Order as O

            rows = list(O.objects.filter(trade=trade).values_list("role", "status", "filled_qty"))
            raise RuntimeError(
                f"flow {self.i}: trade did not close after its stop filled: {rows}"
                f" {Trade.objects.filter(pk=trade.pk).values_list('status', 'remaining_qty')[0]}"
            )
        return latency


class RestingFlows(Flows):
    """One flow with resting targets: entry fill -> two OCO pairs -> T1 -> break-even -> T2."""

    def pairs(self, trade, qty: int) -> list[dict] | None:
        from trading.models import Order

        ids = Order.objects.filter(trade=trade, role="stop", order_class="oco").exclude(
            broker_order_id=""
        )
        found = ids.values_list("broker_order_id", flat=True)
        nodes = [self.fake.orders.get(int(i)) for i in found]
        nodes = [n for n in nodes if n is not None]
        covered = sum(n["leg"][0]["quantity"] for n in nodes if n["leg"][0]["status"] == "open")
        return nodes if covered >= qty else None

    def one(self, timeout: float) -> dict | None:
        from strategies.models import Signal
        from trading.models import Trade
        from trading.pipeline import signal_handle

        self.i += 1
        now = T + timedelta(minutes=self.i % 300, seconds=self.i // 300)
        self.fake.quote("SPY", "449.99", "450.01")
        signal = Signal.objects.create(
            setup="EMA_CROSS", symbol="SPY", execution_symbol="SPY", bar_ts=now,
            entry_price=Decimal("450.00"), stop_price=Decimal("449.00"),
            target_one=Decimal("451.00"), target_two=Decimal("452.00"),
            features={"exec_atr": 1.0}, outcome="generated",
        )  # fmt: skip
        outcome = signal_handle(signal=signal, now=now, config=self.config)
        if outcome != "submitted":
            raise RuntimeError(f"flow {self.i}: signal {outcome}: {signal.checks}")
        from trading.models import Order

        entry = Order.objects.get(signal=signal, role="entry")
        trade = Trade.objects.get(signal=signal)
        t0 = time.time()
        self.fake.fill(int(entry.broker_order_id), price="450.00")
        pairs = wait_for(lambda: self.pairs(trade, entry.qty), timeout)
        if pairs is None:
            return None
        covered_at = max(self.fake.created_wall[n["id"]] for n in pairs)
        t2_pair = next(n for n in pairs if n["leg"][1]["price"] == 452.0)
        t1_at = time.time()
        self.fake.tick("SPY", bid="451.00", ask="451.02")  # T1 limit fills at the broker
        leg = t2_pair["leg"][0]
        moved = wait_for(lambda: leg["stop_price"] == 450.0 or leg["status"] != "open", timeout)
        be_at = time.time()
        kept = leg["status"] == "open" and moved
        self.fake.tick("SPY", bid="452.00", ask="452.02")  # T2 fills the rest

        def closed():
            return Trade.objects.filter(pk=trade.pk, status="closed").exists()

        healed = False
        if not wait_for(closed, timeout):  # the stream missed it (e.g. its lease lapsed)
            from trading.services import order_sync

            for row in Order.objects.filter(trade=trade, parent__isnull=True):
                order_sync(order=row, now=now)  # the poll path, as the fallback would
            healed = True
            if not wait_for(closed, timeout):
                rows = list(Order.objects.filter(trade=trade).values_list("role", "status"))
                print(f"flow {self.i}: trade did not close: {rows}", file=sys.stderr)
        gap_after_t1 = 0.0 if kept else be_at - t1_at  # the T2 shares lost their stop
        return {
            "covered": covered_at - t0,
            "breakeven": be_at - t1_at,
            "unprotected": max(covered_at - t0, gap_after_t1),
            "kept": kept,
            "healed": healed,
            "closed": closed(),
        }


def burners(n: int) -> list:
    """`n` busy-looping processes (the loaded run); the caller stops them by pid."""
    import subprocess

    code = "while True: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=200)
    parser.add_argument("--poll-flows", type=int, default=12)
    parser.add_argument("--resting", action="store_true", help="RESTING_TARGETS=1 flows")
    parser.add_argument("--load-procs", type=int, default=0, help="busy processes meanwhile")
    args = parser.parse_args()
    if args.resting:
        os.environ["RESTING_TARGETS"] = "1"
    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import setup_databases, teardown_databases

    db = settings.DATABASES["default"]
    db.setdefault("TEST", {})["NAME"] = f"{db['NAME']}_bench_protection"
    old = setup_databases(verbosity=0, interactive=False, keepdb=False)
    load = burners(args.load_procs)
    try:
        return run_resting(args) if args.resting else run(args)
    finally:
        for proc in load:
            proc.kill()
            proc.wait()
        from django.db import connection, connections

        with connection.cursor() as cursor:  # threads of the run still hold connections
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        connections.close_all()
        teardown_databases(old, verbosity=0)


def run_resting(args) -> int:
    """Resting-target flows with the account stream (see the module docstring)."""
    from django.conf import settings

    from marketdata.clients.tradier_http import TradierHTTP
    from risk.config import RiskConfig
    from tests.trading.fake_tradier import FakeTradier
    from trading.brokers import broker_override
    from trading.brokers.tradier import TradierBroker

    unlimited = {"trading": 10**9, "standard": 10**9, "market": 10**9}
    fake = FakeTradier(account=f"VA{uuid.uuid4().hex[:8].upper()}", limits=unlimited)
    fake.cash_start = 10**9  # cash never caps the 100 shares
    base_url = fake.serve_http()
    ws_url = fake.start_stream()
    settings.DRY_RUN = False
    settings.RESTING_TARGETS = True
    broker = TradierBroker(
        http=TradierHTTP(base_url=base_url, token="test-token", timeout=5.0, max_retries=2),
        account_id=fake.account,
    )
    broker_override(broker)
    config = RiskConfig(
        risk_per_trade_usd=Decimal("100"), max_concurrent=1000, max_open_orders=10000
    )
    flows = RestingFlows(fake, config)
    result = {
        "name": "protection_resting",
        "load_procs": args.load_procs,
        "load_1m_start": round(os.getloadavg()[0], 2),
    }
    runner = StreamThread(fake, broker, ws_url)
    stream = runner.stream
    runner.start()
    if not wait_for(lambda: stream.stats.reconciles >= 1, 30):
        raise RuntimeError("the account stream did not connect")
    rows, missing = [], 0
    started = time.monotonic()
    for _ in range(args.flows):
        row = flows.one(timeout=10.0)
        if row is None:
            missing += 1
        else:
            rows.append(row)
    result["stream"] = {
        "flows": args.flows,
        "entry_fill_to_all_shares_stopped_sec": summary([r["covered"] for r in rows]),
        "t1_fill_to_breakeven_stop_sec": summary([r["breakeven"] for r in rows]),
        "unprotected_sec": summary([r["unprotected"] for r in rows]),
        "t2_stop_cancelled_after_t1": sum(not r["kept"] for r in rows),
        "flows_closed_only_after_a_poll": sum(r["healed"] for r in rows),
        "flows_not_closed": sum(not r["closed"] for r in rows),
        "stream_connects": stream.stats.connects,
        "stream_drops": stream.stats.drops,
        "flows_without_stop_in_10s": missing,
        "wall_sec": round(time.monotonic() - started, 1),
        "events": stream.stats.events,
    }
    runner.stop()
    result["load_1m_end"] = round(os.getloadavg()[0], 2)
    fake.close()
    print(json.dumps(result))
    bad = missing or any(not r["kept"] for r in rows)
    return 1 if bad else 0


def run(args) -> int:
    from django.conf import settings

    from marketdata.clients.tradier_http import TradierHTTP
    from risk.config import RiskConfig
    from tests.trading.fake_tradier import FakeTradier
    from trading.brokers import broker_override
    from trading.brokers.tradier import TradierBroker
    from trading.pipeline import exits_tick_run

    unlimited = {"trading": 10**9, "standard": 10**9, "market": 10**9}
    fake = FakeTradier(account=f"VA{uuid.uuid4().hex[:8].upper()}", limits=unlimited)
    fake.quote("SPY", "449.99", "450.01")
    base_url = fake.serve_http()
    ws_url = fake.start_stream()
    settings.DRY_RUN = False
    broker = TradierBroker(
        http=TradierHTTP(base_url=base_url, token="test-token", timeout=5.0, max_retries=2),
        account_id=fake.account,
    )
    broker_override(broker)
    config = RiskConfig(
        risk_per_trade_usd=Decimal("100"), max_concurrent=1000, max_open_orders=10000
    )
    flows = Flows(fake, config)
    result = {"name": "protection", "load_1m_start": round(os.getloadavg()[0], 2)}

    # --- with the account stream ---------------------------------------------------------
    runner = StreamThread(fake, broker, ws_url)
    stream = runner.stream
    if args.flows:
        runner.start()
        if not wait_for(lambda: stream.stats.reconciles >= 1, 30):
            raise RuntimeError("the account stream did not connect")
    latencies, missing = [], 0
    started = time.monotonic()
    for _ in range(args.flows):
        value = flows.one(timeout=10.0)
        if value is None:
            missing += 1
        else:
            latencies.append(value)
    result["stream"] = {
        "fill_to_protection_sec": summary(latencies),
        "unprotected_sec_max": round(max(latencies), 4) if latencies else None,
        "flows_without_stop_in_10s": missing,
        "wall_sec": round(time.monotonic() - started, 1),
        "events": stream.stats.events,
        "confirm_reads": stream.stats.confirmed,
    }
    if args.flows:
        runner.stop()

    # --- polling fallback (no stream): the exit manager's tick every interval -------------
    interval = float(settings.EXIT_MANAGER_INTERVAL_SEC)
    stop_polling = threading.Event()

    def poller():
        from django.db import close_old_connections

        while not stop_polling.wait(interval):
            close_old_connections()
            exits_tick_run(now=T + timedelta(minutes=1), config=config)

    flows.streaming = False
    flows.interval = interval
    poll_thread = threading.Thread(target=poller, daemon=True)
    poll_thread.start()
    poll_latencies, poll_missing = [], 0
    started = time.monotonic()
    for _ in range(args.poll_flows):
        value = flows.one(timeout=interval * 2 + 10)
        if value is None:
            poll_missing += 1
        else:
            poll_latencies.append(value)
    stop_polling.set()
    poll_thread.join(interval + 30)
    result["polling"] = {
        "interval_sec": interval,
        "fill_to_protection_sec": summary(poll_latencies),
        "unprotected_sec_max": round(max(poll_latencies), 4) if poll_latencies else None,
        "flows_without_stop": poll_missing,
        "wall_sec": round(time.monotonic() - started, 1),
    }
    result["load_1m_end"] = round(os.getloadavg()[0], 2)
    fake.close()
    print(json.dumps(result))
    return 0 if not missing and not poll_missing else 1


if __name__ == "__main__":
    sys.exit(main())
