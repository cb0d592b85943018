"""An approved entry whose attempt died before the POST is resumed, never lost and never doubled
(reliability finding 5), on real PostgreSQL with the fake Tradier counting POSTs per tag.

The crash: the decision commits (signal `approved`, trade and entry row `new`) and the process
dies before `entry_submit` — here an exception no handler catches, as a SIGKILL leaves it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.trading.helpers import make_signal, minutes
from trading.models import Order, Trade
from trading.orm_ledger import OrmLedger, request_of
from trading.pipeline import signal_handle
from trading.reconciliation import reconcile_run

pytestmark = pytest.mark.django_db(transaction=True)
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)  # 10:00 New York, a Wednesday
CLOSE = minutes(T, 1)  # the signal's bar closes at 14:01
LEASE = 10  # ENTRY_RESUME_LEASE_SEC in these tests
MAX_DELAY = 120  # SIGNAL_MAX_DELAY_SEC in these tests


class Killed(BaseException):
    """The worker died: nothing in the process handles it."""


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.ENTRY_RESUME_LEASE_SEC = LEASE
    settings.SIGNAL_MAX_DELAY_SEC = MAX_DELAY


def _crash_before_send(monkeypatch, config) -> tuple:
    signal = make_signal(bar_ts=T, entry="186.08", stop="185.08", t1=None, t2=None)

    def killed(self, trade, *, now):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(OrmLedger, "entry_submit", killed)
        with pytest.raises(Killed):
            signal_handle(signal=signal, now=CLOSE, config=config)
    signal.refresh_from_db()
    entry = Order.objects.get(signal=signal, role="entry")
    assert signal.outcome == "approved" and entry.status == "new"  # what the crash leaves
    return signal, entry


def _crash_after_claim(monkeypatch, config, fake) -> tuple:
    """Killed between the claim (new -> submitted, committed) and the broker's answer."""
    signal = make_signal(bar_ts=T, entry="186.08", stop="185.08", t1=None, t2=None)

    def killed(request):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(fake.broker, "submit", killed)
        with pytest.raises(Killed):
            signal_handle(signal=signal, now=CLOSE, config=config)
    signal.refresh_from_db()
    entry = Order.objects.get(signal=signal, role="entry")
    assert signal.outcome == "approved"
    assert entry.status == "submitted" and entry.broker_order_id == ""
    return signal, entry


def _lease_expired(entry) -> None:
    """The row was last written LEASE + 1 s ago (wall time): its attempt is gone."""
    Order.objects.filter(pk=entry.pk).update(
        updated_at=timezone.now() - timedelta(seconds=LEASE + 1)
    )


def _retry(signal, now, config):
    return signal_handle(signal=signal, now=now, config=config)


def _reconcile(signal, now, config):
    assert reconcile_run(now=now)["ok"]
    signal.refresh_from_db()
    return signal.outcome


@pytest.mark.parametrize("resume", [_retry, _reconcile], ids=["task retry", "reconciliation"])
def test_an_entry_whose_attempt_died_is_sent_once_with_its_signals_tag(
    fake_tradier, config, monkeypatch, resume
):
    signal, entry = _crash_before_send(monkeypatch, config)
    # inside the lease its attempt may still be alive: reconciliation neither sends nor cancels
    assert reconcile_run(now=CLOSE)["ok"]
    entry.refresh_from_db()
    assert entry.status == "new" and fake_tradier.submissions == {}

    _lease_expired(entry)
    # found MAX_DELAY s after the bar closed (14:01:00 + 120 s = 14:03:00): still fresh
    assert resume(signal, CLOSE + timedelta(seconds=MAX_DELAY), config) == "submitted"
    entry.refresh_from_db()
    assert entry.tag == signal.tag  # the idempotency tag derived from the signal
    assert fake_tradier.submissions == {signal.tag: 1}  # exactly one POST
    assert len(fake_tradier.orders) == 1
    assert entry.broker_order_id == str(next(iter(fake_tradier.orders)))
    assert Order.objects.filter(signal=signal, role="entry").count() == 1
    # a second pass changes nothing
    assert resume(signal, CLOSE + timedelta(seconds=MAX_DELAY), config) == "submitted"
    assert fake_tradier.submissions == {signal.tag: 1}


def test_an_entry_that_already_reached_the_broker_is_linked_not_sent_again(
    fake_tradier, config, monkeypatch
):
    signal, entry = _crash_before_send(monkeypatch, config)
    landed = fake_tradier.broker.submit(request_of(entry))  # it got there some other way
    assert fake_tradier.submissions == {signal.tag: 1}
    _lease_expired(entry)

    assert _retry(signal, CLOSE + timedelta(seconds=30), config) == "submitted"
    entry.refresh_from_db()
    assert entry.broker_order_id == landed.id and entry.status in ("submitted", "open")
    assert fake_tradier.submissions == {signal.tag: 1}  # no second POST
    assert signal.outcome == "submitted"


def test_a_stale_entry_is_cancelled_and_its_signal_failed_with_signal_stale(
    fake_tradier, config, monkeypatch
):
    signal, entry = _crash_before_send(monkeypatch, config)
    _lease_expired(entry)
    # 14:01:00 + 121 s: one second past SIGNAL_MAX_DELAY_SEC
    assert _reconcile(signal, CLOSE + timedelta(seconds=MAX_DELAY + 1), config) == "failed"
    entry.refresh_from_db()
    assert entry.status == "cancelled"
    assert Trade.objects.get(signal=signal).status == "cancelled"
    assert "SIGNAL_STALE" in signal.reasons
    assert fake_tradier.submissions == {}


def test_resumers_at_once_send_one_order(fake_tradier, config, monkeypatch):
    """Two task retries and a reconciliation in three threads (three connections), started
    together; each POST takes 0.3 s so the others arrive while it is in flight."""
    signal, entry = _crash_before_send(monkeypatch, config)
    _lease_expired(entry)
    broker = fake_tradier.broker
    real_submit = broker.submit

    def slow_submit(request):
        threading.Event().wait(0.3)
        return real_submit(request)

    monkeypatch.setattr(broker, "submit", slow_submit)
    now = CLOSE + timedelta(seconds=20)
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def run(job):
        try:
            start.wait()
            job()
        except BaseException as exc:  # reported below, never swallowed
            errors.append(exc)
        finally:
            connection.close()

    jobs = [
        lambda: signal_handle(signal=type(signal).objects.get(pk=signal.pk), now=now,
                              config=config),
        lambda: signal_handle(signal=type(signal).objects.get(pk=signal.pk), now=now,
                              config=config),
        lambda: reconcile_run(now=now),
    ]  # fmt: skip
    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert fake_tradier.submissions == {signal.tag: 1}
    entry.refresh_from_db()
    signal.refresh_from_db()
    assert entry.broker_order_id and signal.outcome == "submitted"


def test_a_claimed_entry_never_answered_is_sent_again_once_after_the_settle_window(
    fake_tradier, config, monkeypatch
):
    signal, entry = _crash_after_claim(monkeypatch, config, fake_tradier)
    broker = fake_tradier.broker
    broker.settle_sec = 1.0
    waits: list[float] = []
    monkeypatch.setattr(broker, "sleep", waits.append)
    _lease_expired(entry)

    assert _retry(signal, CLOSE + timedelta(seconds=30), config) == "submitted"
    assert waits == [0.5, 0.5]  # looked up, then twice more over the 1 s window
    entry.refresh_from_db()
    assert entry.broker_order_id and entry.tag == signal.tag
    assert fake_tradier.submissions == {signal.tag: 1}


def test_a_claimed_entry_whose_post_lands_late_is_linked_not_doubled(
    fake_tradier, config, monkeypatch
):
    """The dead attempt's POST is booked after the first look-up (a late landing, as the
    fault suite's fake Tradier models it): the settle window's second look-up finds it."""
    signal, entry = _crash_after_claim(monkeypatch, config, fake_tradier)
    broker = fake_tradier.broker
    broker.settle_sec = 1.0
    landed = []

    def lands_during_the_wait(seconds):
        if not landed:
            landed.append(broker.submit(request_of(entry)))

    monkeypatch.setattr(broker, "sleep", lands_during_the_wait)
    _lease_expired(entry)

    assert _retry(signal, CLOSE + timedelta(seconds=30), config) == "submitted"
    entry.refresh_from_db()
    assert entry.broker_order_id == landed[0].id
    assert fake_tradier.submissions == {signal.tag: 1}


def test_a_retried_bar_task_sends_the_entry_its_first_attempt_approved(
    fake_tradier, config, monkeypatch
):
    """The bar task's own retry (a claimed bar: evaluated, its signals stored)."""
    from decimal import Decimal

    from marketdata.services import bars_upsert
    from marketdata.types import BarData
    from strategies.models import FeatureSnapshot, Signal
    from trading.pipeline import process_bar_close

    bar = BarData("SPY", T, 100.0, 100.4, 99.8, 100.2, 50_000.0, 100.1)
    bars_upsert(bars=[bar])
    FeatureSnapshot.objects.create(symbol="SPY", bar_ts=T, features={})
    signal = Signal.objects.create(
        setup="EMA_CROSS", symbol="SPY", execution_symbol="SPY", bar_ts=T,
        entry_price=Decimal("100.2"), stop_price=Decimal("99.2"),
    )  # fmt: skip

    def killed(self, trade, *, now):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(OrmLedger, "entry_submit", killed)
        with pytest.raises(Killed):
            process_bar_close(bar=bar, config=config)
    signal.refresh_from_db()
    entry = Order.objects.get(signal=signal, role="entry")
    assert signal.outcome == "approved" and entry.status == "new"
    _lease_expired(entry)

    process_bar_close(bar=bar, config=config)  # the retry: the bar is claimed already
    signal.refresh_from_db()
    assert signal.outcome == "submitted"
    assert fake_tradier.submissions == {signal.tag: 1}
