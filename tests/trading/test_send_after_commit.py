"""Broker sends happen with no transaction open, on real PostgreSQL (issue 17: a protective
stop was doubled after a connection kill — it had been sent inside a transaction that was then
rolled back, and the retry sent it again).

Each broker call is observed from a second, independent PostgreSQL connection: the worker's
backend must be `idle` (not `idle in transaction`) and hold no lock but the advisory send lock
while the order is at the broker. Sends are counted by the fake Tradier per tag."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from django.db import InterfaceError, OperationalError, connection

from tests.trading.helpers import make_signal, minutes
from trading import services
from trading.core import lifecycle
from trading.models import Fill, Order, Trade
from trading.pipeline import signal_handle
from trading.reconciliation import reconcile_run

pytestmark = pytest.mark.django_db(transaction=True)
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)
GONE = (OperationalError, InterfaceError)


def _observer() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        dbname=s["NAME"],
        autocommit=True,
    )


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.fixture
def watched(fake_tradier, monkeypatch):
    """Every broker submit records (tag, backend state, lock types) seen from outside."""
    broker = fake_tradier.broker
    real_submit = broker.submit
    seen: list[tuple[str, str, set[str]]] = []
    observer = _observer()

    def submit(request):
        pid = _backend_pid()
        row = observer.execute(
            "SELECT state FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()
        locks = observer.execute(
            "SELECT DISTINCT locktype FROM pg_locks WHERE pid = %s AND granted", [pid]
        ).fetchall()
        seen.append((request.tag, row[0], {lock[0] for lock in locks}))
        return real_submit(request)

    monkeypatch.setattr(broker, "submit", submit)
    yield fake_tradier, seen
    observer.close()


def _entry_filled(fake, config):
    signal = make_signal(bar_ts=T, entry="186.08", stop="185.08", t1=None, t2=None)
    assert signal_handle(signal=signal, now=minutes(T, 1), config=config) == "submitted"
    entry = Order.objects.get(signal=signal, role="entry")
    fake.fill(int(entry.broker_order_id), price="186.10")
    return signal, entry


def test_entry_and_stop_are_sent_with_no_transaction_open(watched, config):
    fake, seen = watched
    signal, entry = _entry_filled(fake, config)
    services.order_sync(order=entry, now=minutes(T, 2), broker=fake.broker)
    trade = Trade.objects.get(signal=signal)
    stop = Order.objects.get(trade=trade, role="stop")
    assert [tag for tag, _, _ in seen] == [entry.tag, stop.tag]
    # the backend is idle during each call (a transaction open would read "idle in
    # transaction") and holds only the session advisory send lock (no row or relation lock)
    assert [state for _, state, _ in seen] == ["idle", "idle"]
    assert all(locks <= {"advisory"} for _, _, locks in seen)
    assert fake.submissions[entry.tag] == 1 and fake.submissions[stop.tag] == 1


def test_a_fill_rolled_back_after_deciding_its_stop_sent_no_stop(watched, config, monkeypatch):
    """The fill's transaction dies after protect() chose the stop: nothing was sent; the retry
    applies the fill again and sends the stop once (before the fix: sent twice)."""
    fake, seen = watched
    signal, entry = _entry_filled(fake, config)
    real = lifecycle._entry_filled

    def then_connection_lost(*args, **kwargs):
        real(*args, **kwargs)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(lifecycle, "_entry_filled", then_connection_lost)
    with pytest.raises(OperationalError):
        services.order_sync(order=entry, now=minutes(T, 2), broker=fake.broker)
    assert [tag for tag, _, _ in seen] == [entry.tag]  # the stop never left
    assert not Fill.objects.exists() and not Order.objects.filter(role="stop").exists()

    monkeypatch.setattr(lifecycle, "_entry_filled", real)
    services.order_sync(order=entry, now=minutes(T, 3), broker=fake.broker)
    stop = Order.objects.get(trade__signal=signal, role="stop")
    assert fake.submissions[stop.tag] == 1
    assert len(fake.orders) == 2  # the entry and one stop at the broker


def test_connection_killed_after_the_stop_reached_the_broker_sends_it_once(
    watched, config, monkeypatch
):
    """A real pg_terminate_backend right after the broker accepted the stop: the answer is
    not recorded, the retry sends nothing, reconciliation finds the stop by its tag."""
    fake, seen = watched
    signal, entry = _entry_filled(fake, config)
    broker = fake.broker
    observed_submit = broker.submit
    killer = _observer()

    def submit_then_kill(request):
        answer = observed_submit(request)
        if request.tag.endswith("-stop"):
            killer.execute("SELECT pg_terminate_backend(%s)", [_backend_pid()])
        return answer

    monkeypatch.setattr(broker, "submit", submit_then_kill)
    try:
        with pytest.raises(GONE):
            services.order_sync(order=entry, now=minutes(T, 2), broker=broker)
    finally:
        killer.close()
    connection.close()  # the worker's next task gets a fresh connection

    stop = Order.objects.get(trade__signal=signal, role="stop")
    # the fill committed before the send; the claim committed: submitted, no broker id yet
    assert Fill.objects.filter(order=entry).count() == 1
    assert stop.status == "submitted" and stop.broker_order_id == ""
    # the retry of the task: the fill is known, the stop is not sent again
    services.order_sync(order=entry, now=minutes(T, 3), broker=broker)
    assert reconcile_run(now=minutes(T, 4), broker=broker)["ok"]
    stop.refresh_from_db()
    assert stop.broker_order_id and stop.status == "open"
    assert fake.submissions[stop.tag] == 1
    assert [tag for tag, _, _ in seen] == [entry.tag, stop.tag]
