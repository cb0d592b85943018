"""The Tradier account event stream against the stateful fake's websocket: events go through the
poll's apply path (idempotent by order id and executed quantity, fills at the broker's
transaction_date), a drop mid-fill is healed by the reconcile on reconnect, one owner across
processes (Redis lease), the heartbeat watchdog reconnects, and the process stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from marketdata.clients.tradier_budget import redis_client
from tests.trading.fake_tradier import FakeTradier
from trading.account_events import event_apply, parse_event
from trading.account_stream import AccountStream, Lease, StreamConfig, backoff_delay, stream_is_live
from trading.brokers import broker_override
from trading.models import Fill, Order

DB = pytest.mark.django_db(transaction=True)
D = Decimal
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)
DOC_EVENT = {  # Tradier's documented example (Account Streaming Responses), a fill
    "id": 1107075,
    "event": "order",
    "status": "filled",
    "type": "limit",
    "price": 10.0,
    "stop_price": 0.0,
    "avg_fill_price": 10.0,
    "exec_quantity": 2.0,
    "last_fill_quantity": 0.0,
    "remaining_quantity": 0.0,
    "transaction_date": "2021-08-09T20:05:35.277Z",
    "create_date": "2021-08-09T20:05:35.277Z",
    "account": "6YA",
}


def wait_for(predicate, timeout=8.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@pytest.fixture
def live():
    """A fake Tradier with its websocket, a broker on it (the test override), a fresh account
    id so Redis keys never collide with another test."""
    account = f"VA{uuid.uuid4().hex[:8].upper()}"
    fake = FakeTradier(account=account)
    fake.start_stream()
    fake.broker = fake.tradier_broker(timeout=2.0, max_retries=2)
    broker_override(fake.broker)
    yield fake
    broker_override(None)
    fake.close()


class Runner:
    """An AccountStream on its own event loop in a thread, as the command runs it."""

    def __init__(self, fake, **config) -> None:
        self.stream = AccountStream(
            StreamConfig(
                ws_url=fake.ws_url,
                account=fake.account,
                lease_sec=config.pop("lease_sec", 3.0),
                heartbeat_timeout_sec=config.pop("heartbeat_timeout_sec", 30.0),
                backoff_base_sec=0.05,
                confirm_sec=config.pop("confirm_sec", 30.0),
                backoff_max_sec=0.2,
                **config,
            ),
            broker=fake.broker,
            redis=redis_client(),
        )
        self.loop = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.stream.run())

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.stream.stop)
        self.thread.join(10)
        assert not self.thread.is_alive()


def place_limit(fake, qty=10, price="186.00", tag=None) -> Order:
    from trading.services import order_create, order_submit

    order = order_create(
        symbol="AAPL",
        side="buy",
        qty=qty,
        order_type="limit",
        price=D(price),
        role="entry",
        tag=tag or f"at-test-{uuid.uuid4().hex[:10]}",
        now=T,
        broker=fake.broker,
    )
    return order_submit(order=order, now=T, broker=fake.broker)


def test_documented_payload_parses_and_heartbeats_are_not_orders():
    event = parse_event(DOC_EVENT, now=T)
    assert (event.id, event.status, event.exec_quantity, event.avg_fill_price) == (
        "1107075",
        "filled",
        2,
        D("10.0"),
    )
    assert event.transaction_date == datetime(2021, 8, 9, 20, 5, 35, 277000, tzinfo=UTC)
    beat = {"event": "heartbeat", "status": "active", "timestamp": "2025-12-10T18:02:51Z"}
    assert parse_event(beat, now=T) is None
    older = {**DOC_EVENT, "executed_quantity": 2.0}
    del older["exec_quantity"]  # the older documentation page's field name
    assert parse_event(older, now=T).exec_quantity == 2
    assert parse_event({**DOC_EVENT, "transaction_date": "garbage"}, now=T).transaction_date == T
    assert parse_event({"event": "order", "status": "open"}, now=T) is None  # no id


@DB
def test_events_apply_once_per_executed_quantity_at_the_broker_time(live):
    order = place_limit(live)
    base = {**DOC_EVENT, "id": int(order.broker_order_id), "price": 186.0}
    partial = {
        **base,
        "status": "partially_filled",
        "exec_quantity": 4.0,
        "avg_fill_price": 185.90,
        "remaining_quantity": 6.0,
        "transaction_date": "2025-09-17T14:01:02.500Z",
    }
    assert event_apply(parse_event(partial, now=T)) == "applied"
    assert event_apply(parse_event(partial, now=T)) == "applied"  # a replay: nothing new
    full = {
        **base,
        "status": "filled",
        "exec_quantity": 10.0,
        "avg_fill_price": 185.96,  # (4 x 185.90 + 6 x 186.00) / 10
        "remaining_quantity": 0.0,
        "transaction_date": "2025-09-17T14:01:07.000Z",
    }
    assert event_apply(parse_event(full, now=T)) == "applied"
    order.refresh_from_db()
    fills = list(Fill.objects.filter(order=order).order_by("ts"))
    assert order.status == "filled" and order.filled_qty == 10
    assert [(f.qty, f.price) for f in fills] == [(4, D("185.90")), (6, D("186.00"))]
    assert fills[0].ts == datetime(2025, 9, 17, 14, 1, 2, 500000, tzinfo=UTC)
    assert fills[1].ts == datetime(2025, 9, 17, 14, 1, 7, tzinfo=UTC)
    unknown = parse_event({**DOC_EVENT, "id": 99}, now=T)
    assert event_apply(unknown) == "unmatched"


@DB
def test_stream_applies_fills_and_heals_a_drop_mid_fill_on_reconnect(live):
    runner = Runner(live).start()
    try:
        assert wait_for(lambda: runner.stream.stats.reconciles >= 1 and live.stream_clients == 1)
        assert stream_is_live(redis_client(), live.account)
        order = place_limit(live, qty=10, price="186.00")
        live.quote("AAPL", "185.98", "186.20")
        live.tick("AAPL")  # ask above the limit: nothing
        live.fill(int(order.broker_order_id), qty=4, price="185.99")  # a partial execution
        assert wait_for(lambda: Order.objects.get(pk=order.pk).filled_qty == 4)
        fill = Fill.objects.get(order=order)
        broker_time = live.orders[int(order.broker_order_id)]["transaction_date"]
        assert fill.ts == datetime.fromisoformat(broker_time.replace("Z", "+00:00"))
        live.drop_stream()  # the stream drops in the middle of the fill...
        assert wait_for(lambda: live.stream_clients == 0, timeout=2)
        live.tick("AAPL", "185.90", "185.95")  # ...the rest fills while nobody listens
        assert wait_for(lambda: runner.stream.stats.connects >= 2)
        assert wait_for(lambda: Order.objects.get(pk=order.pk).filled_qty == 10)
        order.refresh_from_db()
        assert order.status == "filled"
        assert sorted(f.qty for f in Fill.objects.filter(order=order)) == [4, 6]
        # the reconnect reconciled (counted once the reconciliation returns)
        assert wait_for(lambda: runner.stream.stats.reconciles >= 2)
    finally:
        runner.stop()
    assert not stream_is_live(redis_client(), live.account)


@DB
def test_a_fill_reported_before_the_submit_returned_is_matched_by_tag(live):
    """A marketable order fills inside its own POST: the fill event can beat our record of the
    broker id; the tag finds the row (the lock waits for the sender), no sweep needed."""
    runner = Runner(live).start()  # confirm_sec 30: only the stream can apply it in time
    try:
        assert wait_for(lambda: runner.stream.stats.reconciles >= 1)
        live.quote("AAPL", "185.98", "186.00")
        order = place_limit(live, price="186.05")  # marketable: filled on the current touch
        assert wait_for(lambda: Order.objects.get(pk=order.pk).status == "filled", timeout=5)
        assert Fill.objects.get(order=order).price == D("186.00")
        assert runner.stream.stats.confirmed == 0
    finally:
        runner.stop()


@DB
def test_a_rejection_after_the_200_arrives_on_the_stream(live):
    runner = Runner(live).start()
    try:
        assert wait_for(lambda: runner.stream.stats.reconciles >= 1)
        live.reject_next("AccountMarginRuleViolation")
        order = place_limit(live)
        assert order.status == "submitted"  # Tradier answered 200
        live.tick("AAPL")  # downstream risk rejects it afterwards
        assert wait_for(lambda: Order.objects.get(pk=order.pk).status == "rejected")
        remote = live.broker.order(order.broker_order_id)
        assert remote.status == "rejected"
        assert remote.raw["errors"] == {"error": ["AccountMarginRuleViolation"]}
    finally:
        runner.stop()


@DB
def test_an_accepted_order_no_event_confirms_is_read_back_within_the_bound(live):
    live.mute_stream = True  # connected, but the events get lost
    runner = Runner(live, confirm_sec=0.3).start()
    try:
        assert wait_for(lambda: runner.stream.stats.reconciles >= 1)
        order = place_limit(live)
        assert order.status == "submitted"
        assert wait_for(lambda: Order.objects.get(pk=order.pk).status == "open", timeout=5)
        assert wait_for(lambda: runner.stream.stats.confirmed >= 1)  # counted after the round
        assert runner.stream.stats.events == 0
    finally:
        runner.stop()


@DB
def test_a_protective_stop_rejected_after_acceptance_is_replaced_then_the_symbol_flattened(
    live, config
):
    from risk.selectors import trading_state_get
    from tests.trading.helpers import make_signal, minutes
    from trading.models import Trade
    from trading.pipeline import signal_handle

    live.quote("SPY", "99.99", "100.01")
    signal = make_signal(bar_ts=T, entry="100.00", stop="99.00", t1=None, t2=None)
    assert signal_handle(signal=signal, now=minutes(T, 1), config=config) == "submitted"
    entry = Order.objects.get(signal=signal, role="entry")
    live.fill(int(entry.broker_order_id), price="100.00")
    assert event_apply(parse_event(live.events[-1], now=T)) == "applied"  # the fill event
    trade = Trade.objects.get(signal=signal)
    first = Order.objects.get(trade=trade, role="stop")
    assert trade.status == "open" and first.status in ("submitted", "open")
    live.reject(int(first.broker_order_id), "OrderRejectedByRisk")  # after its 200
    assert event_apply(parse_event(live.events[-1], now=T)) == "applied"
    first.refresh_from_db()
    second = Order.objects.get(trade=trade, role="stop", status__in=("submitted", "open"))
    assert first.status == "rejected" and second.pk != first.pk
    assert live.orders[int(second.broker_order_id)]["quantity"] == trade.remaining_qty
    assert trading_state_get().state == "ACTIVE"
    live.reject(int(second.broker_order_id), "OrderRejectedByRisk")  # dies again
    assert event_apply(parse_event(live.events[-1], now=T)) == "applied"
    flatten = Order.objects.get(trade=trade, role="flatten")
    sent = live.orders[int(flatten.broker_order_id)]
    assert (sent["side"], sent["type"], sent["quantity"]) == (
        "sell",
        "market",
        float(trade.qty),
    )
    assert trading_state_get().state == "REDUCING"
    assert not Order.objects.filter(trade=trade, role="stop", status__in=("submitted", "open"))


@DB
def test_polling_is_the_fallback_only_while_the_stream_is_down(live, settings):
    from trading.account_stream import _key
    from trading.pipeline import exits_tick_run

    settings.TRADIER_ACCOUNT_ID = live.account
    order = place_limit(live)
    path = f"/v1/accounts/{live.account}/orders/{order.broker_order_id}"

    def gets():
        return sum(1 for r in live.requests if r.method == "GET" and r.url.path == path)

    redis = redis_client()
    redis.set(_key(live.account, "live"), "test", px=5000)  # a stream is live
    try:
        exits_tick_run(now=T)
        assert gets() == 0
    finally:
        redis.delete(_key(live.account, "live"))
    exits_tick_run(now=T)  # no stream: the exit manager polls each working order
    assert gets() == 1


@DB
def test_only_one_process_owns_the_stream_and_a_standby_takes_over(live):
    first = Runner(live, lease_sec=1.5).start()
    assert wait_for(lambda: first.stream.stats.connects == 1)
    second = Runner(live, lease_sec=1.5).start()
    try:
        time.sleep(1.0)
        assert second.stream.stats.connects == 0 and live.stream_connections == 1
        first.stop()
        assert wait_for(lambda: second.stream.stats.connects == 1, timeout=6)
        # the fake counts a client once its subscription message arrived (after the connect)
        assert wait_for(lambda: live.stream_clients == 1, timeout=6)
    finally:
        second.stop()


@DB
def test_heartbeat_watchdog_reconnects_a_silent_stream(live):
    runner = Runner(live, heartbeat_timeout_sec=0.4).start()  # fake beats every 60 s
    try:
        assert wait_for(lambda: runner.stream.stats.connects >= 3)
        assert runner.stream.stats.sessions >= 1
    finally:
        runner.stop()


def test_lease_is_exclusive_and_released_only_by_its_owner():
    redis = redis_client()
    key = f"autotrader:test:lease:{uuid.uuid4().hex}"
    a, b = Lease(redis, key, 5), Lease(redis, key, 5)
    assert a.acquire() and not b.acquire()
    b.release()  # not the owner: no effect
    assert a.owner() == a.token and not b.renew() and a.renew()
    a.release()
    assert b.acquire()
    b.release()


def test_backoff_is_jittered_exponential_and_capped():
    assert backoff_delay(0, 0.5, 30, rng=lambda: 1.0) == 0.5
    assert backoff_delay(3, 0.5, 30, rng=lambda: 1.0) == 4.0
    assert backoff_delay(10, 0.5, 30, rng=lambda: 1.0) == 30
    assert backoff_delay(10, 0.5, 30, rng=lambda: 0.0) == 0.0


@DB
def test_run_account_stream_stops_within_5_seconds_of_sigterm(live, settings):
    from django.db import connection

    base_url = live.serve_http()
    env = {
        **os.environ,
        "DRY_RUN": "0",
        "TRADIER_ACCESS_TOKEN": "test-token",
        "TRADIER_ACCOUNT_ID": live.account,
        "TRADIER_BASE_URL": base_url,
        "TRADIER_ACCOUNT_WS_URL": live.ws_url,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "AUTOTRADER_ENV_FILE": "/nonexistent",
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_account_stream"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(lambda: live.stream_clients == 1 or proc.poll() is not None, timeout=90)
        assert proc.poll() is None and live.stream_clients == 1, proc.stdout.read()
        check = subprocess.run(
            [sys.executable, "manage.py", "run_account_stream", "--check"],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0 and "stream live" in check.stdout, check.stderr
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        took = time.monotonic() - started
        output = proc.stdout.read()
        assert took < 5 and proc.returncode == 0, (took, output)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not stream_is_live(redis_client(), live.account)


def _database_url(db: dict) -> str:
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"
