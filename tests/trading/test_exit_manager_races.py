"""Two processes at one trade's exits, on real PostgreSQL (issue 17, found by the small soak:
a protective stop filled at the broker while the ledger called it cancelled).

The beat's exit tick and a bar's own exit step run on different pool processes. Two things
went wrong when both reached the same trade:
- a cancel of an order whose send was in flight (claimed, no broker id yet) was recorded in
  the ledger alone, as if it had never been sent; the POST then landed and the stop lived at
  the broker as an order the ledger called cancelled;
- both managers saw the trade without a working stop and both re-protected it: two stops.

Threads stand in for the two processes (each thread has its own database connection); the
broker is the in-process fake Tradier, whose order book is the truth compared against."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connections

from tests.trading.helpers import make_signal, minutes
from trading import services
from trading.core import lifecycle
from trading.models import Order, Trade
from trading.orm_ledger import OrmLedger, order_create, order_submit
from trading.pipeline import exits_tick_run, signal_handle

pytestmark = pytest.mark.django_db(transaction=True)
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)  # 10:00 New York, a regular session
WORKING = {"new", "submitted", "open", "partially_filled"}


def _open_trade(fake, config) -> Trade:
    """An entry filled at the broker and synced: an open trade with its stop working."""
    signal = make_signal(bar_ts=T, entry="186.08", stop="185.08", t1=None, t2=None)
    assert signal_handle(signal=signal, now=minutes(T, 1), config=config) == "submitted"
    entry = Order.objects.get(signal=signal, role="entry")
    fake.fill(int(entry.broker_order_id), price="186.10")
    services.order_sync(order=entry, now=minutes(T, 2), broker=fake.broker)
    trade = Trade.objects.get(signal=signal)
    assert trade.status == "open"
    stops = Order.objects.filter(trade=trade, role="stop", status__in=WORKING)
    assert stops.count() == 1 and stops.get().broker_order_id
    return trade


def _in_thread(target) -> tuple[threading.Thread, list]:
    errors: list = []

    def run():
        try:
            target()
        except Exception as exc:  # surfaced by the test
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_a_cancel_while_the_send_is_in_flight_waits_for_the_broker_id(fake_tradier, config):
    fake = fake_tradier
    trade = _open_trade(fake, config)
    stop = order_create(
        symbol=trade.execution_symbol, side="sell", qty=trade.remaining_qty,
        order_type="stop", stop=trade.stop_price, role="stop",
        tag=f"{trade.signal.tag.removesuffix('-entry')}-stop-inflight",
        trade=trade, signal=trade.signal, now=minutes(T, 3), broker=fake.broker,
    )  # fmt: skip
    real_submit = fake.broker.submit
    in_flight, release = threading.Event(), threading.Event()

    def slow_submit(request):
        in_flight.set()
        assert release.wait(10)
        return real_submit(request)

    fake.broker.submit = slow_submit
    sender, errors = _in_thread(
        lambda: order_submit(order=Order.objects.get(pk=stop.pk), now=minutes(T, 3))
    )
    assert in_flight.wait(10)
    # the other manager cancels the stop while its POST is on the way
    cancelled = lifecycle.cancel(
        OrmLedger(fake.broker), Order.objects.get(pk=stop.pk), now=minutes(T, 3), cause="race"
    )
    assert cancelled is False  # not known at the broker yet: nothing to record
    assert Order.objects.get(pk=stop.pk).status == "submitted"
    release.set()
    sender.join(10)
    assert not errors
    fake.broker.submit = real_submit

    stop.refresh_from_db()
    assert stop.broker_order_id and stop.status in WORKING
    assert fake.orders[int(stop.broker_order_id)]["status"] == "open"
    # once its id is known the cancel reaches the broker, and both books agree
    assert lifecycle.cancel(OrmLedger(fake.broker), stop, now=minutes(T, 4), cause="retry")
    stop.refresh_from_db()
    assert stop.status == "cancelled"
    assert fake.orders[int(stop.broker_order_id)]["status"] == "canceled"


def test_a_claimed_order_whose_sender_died_is_cancelled_at_the_broker(fake_tradier, config):
    """No send in flight, no broker id (its worker died after the POST): the tag is looked up
    and the cancel goes to the broker, instead of the ledger alone."""
    fake = fake_tradier
    trade = _open_trade(fake, config)
    stop = Order.objects.get(trade=trade, role="stop")
    broker_id = int(stop.broker_order_id)
    Order.objects.filter(pk=stop.pk).update(broker_order_id="", status="submitted")
    stop.refresh_from_db()
    assert lifecycle.cancel(OrmLedger(fake.broker), stop, now=minutes(T, 4), cause="exit")
    stop.refresh_from_db()
    assert stop.status == "cancelled" and stop.broker_order_id == str(broker_id)
    assert fake.orders[broker_id]["status"] == "canceled"


def test_a_new_order_is_cancelled_in_the_ledger_and_never_sent(fake_tradier, config):
    fake = fake_tradier
    trade = _open_trade(fake, config)
    stop = order_create(
        symbol=trade.execution_symbol, side="sell", qty=1, order_type="stop",
        stop=trade.stop_price, role="stop", tag="at-unsent-stop", trade=trade,
        signal=trade.signal, now=minutes(T, 3), broker=fake.broker,
    )  # fmt: skip
    before = len(fake.orders)
    assert lifecycle.cancel(OrmLedger(fake.broker), stop, now=minutes(T, 3), cause="unsent")
    assert Order.objects.get(pk=stop.pk).status == "cancelled"
    order_submit(order=Order.objects.get(pk=stop.pk), now=minutes(T, 3))  # a late sender
    assert len(fake.orders) == before and not fake.by_tag("at-unsent-stop")


def test_two_exit_managers_at_one_unprotected_trade_place_one_stop(
    fake_tradier, config, monkeypatch
):
    """The trade lost its stop (cancelled at the broker). Two exit ticks at once: each must
    see what the other did. The window between "no working stop" and the new stop's row is
    widened to 0.5 s (without the per-trade lock both managers placed a stop)."""
    fake = fake_tradier
    trade = _open_trade(fake, config)
    stop = Order.objects.get(trade=trade, role="stop")
    assert lifecycle.cancel(OrmLedger(fake.broker), stop, now=minutes(T, 3), cause="lost")
    real_protect = lifecycle.protect

    def slow_protect(ledger, trade, *, now):
        time.sleep(0.5)
        return real_protect(ledger, trade, now=now)

    monkeypatch.setattr(lifecycle, "protect", slow_protect)
    barrier = threading.Barrier(2)

    def tick():
        barrier.wait(10)
        exits_tick_run(now=minutes(T, 4), config=config)

    runs = [_in_thread(tick) for _ in range(2)]
    for thread, errors in runs:
        thread.join(30)
        assert not errors
    working = Order.objects.filter(trade=trade, role="stop", status__in=WORKING)
    assert working.count() == 1
    at_broker = [
        o for o in fake.orders.values()
        if o.get("type") == "stop" and o["status"] in ("open", "pending")
    ]  # fmt: skip
    assert len(at_broker) == 1
    assert str(at_broker[0]["id"]) == working.get().broker_order_id
