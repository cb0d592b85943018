"""Claim-and-resume of a closed bar: an attempt that dies after the bar was claimed
(evaluated, its signals stored) is retried and the retry decides those signals; a database that
goes away under a signal is retried, never recorded as the signal's failure."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import OperationalError

from marketdata.services import bars_upsert
from marketdata.types import BarData
from strategies.models import FeatureSnapshot, Signal
from trading import pipeline
from trading.tasks import on_bar_closed

BAR_TS = datetime(2025, 9, 17, 14, 30, tzinfo=UTC)  # 10:30 New York, a Wednesday


def _claimed_bar_with_an_undecided_signal() -> tuple[BarData, Signal]:
    """What an attempt killed between evaluation and decision leaves behind."""
    bar = BarData("SPY", BAR_TS, 100.0, 100.4, 99.8, 100.2, 50_000.0, 100.1)
    bars_upsert(bars=[bar])
    FeatureSnapshot.objects.create(symbol="SPY", bar_ts=BAR_TS, features={})
    signal = Signal.objects.create(
        setup="EMA_CROSS",
        symbol="SPY",
        execution_symbol="SPY",
        bar_ts=BAR_TS,
        entry_price=Decimal("100.2"),
        stop_price=Decimal("99.2"),
        target_one=Decimal("101.2"),
        target_two=Decimal("102.2"),
    )
    return bar, signal


@pytest.mark.django_db
def test_a_retried_bar_decides_the_signals_its_first_attempt_left(paper):
    bar, signal = _claimed_bar_with_an_undecided_signal()
    handled = pipeline.process_bar_close(bar=bar)
    signal.refresh_from_db()
    assert [s.pk for s in handled] == [signal.pk]
    assert signal.outcome != "generated"  # decided now (approved/submitted or blocked)
    assert pipeline.process_bar_close(bar=bar) == []  # and only once


@pytest.mark.django_db
def test_a_database_gone_mid_decision_retries_the_bar_instead_of_failing_the_signal(
    paper, monkeypatch
):
    bar, signal = _claimed_bar_with_an_undecided_signal()
    real = pipeline.lifecycle.signal_decide
    calls = []

    def decide(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the connection dies under the first attempt
            raise OperationalError("server closed the connection unexpectedly")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline.lifecycle, "signal_decide", decide)
    result = on_bar_closed.apply(args=[bar.as_event()], throw=False)  # retries run inline
    signal.refresh_from_db()
    assert len(calls) == 2 and result.successful()
    assert signal.outcome not in ("generated", "failed")


@pytest.mark.django_db
def test_an_error_of_the_signal_itself_is_still_recorded_as_failed(paper):
    _, signal = _claimed_bar_with_an_undecided_signal()
    candidate = pipeline.candidate_of(signal)
    with pytest.raises(OperationalError):
        pipeline._signal_failed(candidate, OperationalError("gone"))
    signal.refresh_from_db()
    assert signal.outcome == "generated"  # left for the retry
    pipeline._signal_failed(candidate, ValueError("bad levels"))
    signal.refresh_from_db()
    assert signal.outcome == "failed"


def _approved_signal(n: int) -> Signal:
    return Signal.objects.create(
        setup="EMA_CROSS",
        symbol="SPY",
        execution_symbol="SPY",
        bar_ts=BAR_TS.replace(minute=n),
        entry_price=Decimal("100"),
        stop_price=Decimal("99"),
        outcome="approved",
    )


def _entry(signal: Signal, *, status: str, broker_order_id: str = "") -> None:
    from trading.models import Order

    Order.objects.create(
        tag=f"sig-{signal.pk}-entry",
        broker="tradier",
        broker_order_id=broker_order_id,
        signal=signal,
        role="entry",
        symbol="SPY",
        side="buy",
        qty=10,
        order_type="market",
        status=status,
        created_at=BAR_TS,
    )


@pytest.mark.django_db
def test_the_journal_follows_the_ledger_after_a_crash_between_decision_and_record():
    from trading.reconciliation import signals_follow_ledger

    sent, never, in_flight = _approved_signal(1), _approved_signal(2), _approved_signal(3)
    _entry(sent, status="open", broker_order_id="257460")  # reached Tradier, not recorded
    _entry(never, status="cancelled")  # reconciliation cancelled it: it never reached Tradier
    _entry(in_flight, status="new")  # being sent (or the retry will send it)
    changed = signals_follow_ledger()
    outcomes = {s.pk: s.outcome for s in Signal.objects.all()}
    assert outcomes == {sent.pk: "submitted", never.pk: "failed", in_flight.pk: "approved"}
    assert sorted(changed) == sorted([f"{sent.pk}:submitted", f"{never.pk}:failed"])
    assert signals_follow_ledger() == []  # settled: nothing more to say


def _age_signal(signal: Signal, seconds: float) -> None:
    from datetime import timedelta

    from django.utils import timezone

    Signal.objects.filter(pk=signal.pk).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )


@pytest.mark.django_db
def test_the_scan_decides_a_signal_whose_bar_task_vanished(paper, settings):
    """The bar task evaluated the bar and vanished (its message lost): the scan decides the
    signal while its bar is fresh (stored 25 s ago >= SIGNAL_RESUME_AFTER_SEC 20; bar closed
    60 s before the market time <= SIGNAL_MAX_DELAY_SEC 120), exactly once."""
    from datetime import timedelta

    from trading.models import Order

    settings.SIGNAL_RESUME_AFTER_SEC, settings.SIGNAL_MAX_DELAY_SEC = 20, 120
    _, signal = _claimed_bar_with_an_undecided_signal()
    market_now = BAR_TS + timedelta(minutes=2)  # the bar closed at +1 min: 60 s ago
    assert pipeline.signals_resume(now=market_now) == {"resumed": 0, "stale": 0}  # too young
    _age_signal(signal, 25)
    assert pipeline.signals_resume(now=market_now) == {"resumed": 1, "stale": 0}
    signal.refresh_from_db()
    assert signal.outcome not in ("generated", "failed")
    entries = Order.objects.filter(signal=signal, role="entry").count()
    assert entries == (1 if signal.outcome in ("dry_run", "submitted") else 0)
    assert pipeline.signals_resume(now=market_now) == {"resumed": 0, "stale": 0}


@pytest.mark.django_db
def test_the_scan_marks_a_stale_undecided_signal_failed_with_a_code(paper, settings):
    """Found 121 s after its bar closed (> SIGNAL_MAX_DELAY_SEC 120): not traded late, but
    never left `generated` either: failed, code SIGNAL_STALE, no order."""
    from datetime import timedelta

    from trading.models import Order

    settings.SIGNAL_RESUME_AFTER_SEC, settings.SIGNAL_MAX_DELAY_SEC = 20, 120
    _, signal = _claimed_bar_with_an_undecided_signal()
    _age_signal(signal, 300)
    late = BAR_TS + timedelta(minutes=1, seconds=121)
    assert pipeline.signals_resume(now=late) == {"resumed": 0, "stale": 1}
    signal.refresh_from_db()
    assert signal.outcome == "failed" and "SIGNAL_STALE" in signal.reasons
    assert not Order.objects.filter(signal=signal).exists()


@pytest.mark.django_db
def test_a_signal_decided_meanwhile_is_not_decided_again(paper):
    """Two deciders of one signal (its bar task and the scan): the second finds it decided
    under the decision lock and returns that outcome without a second trade or order."""
    from risk.config import RiskConfig
    from trading.models import Order, Trade

    _, signal = _claimed_bar_with_an_undecided_signal()
    stale_copy = Signal.objects.get(pk=signal.pk)  # read before the first decision
    now = BAR_TS + pipeline.BAR
    config = RiskConfig.from_settings()
    first = pipeline.signal_handle(signal=signal, now=now, config=config)
    second = pipeline.signal_handle(signal=stale_copy, now=now, config=config)  # still "generated"
    assert stale_copy.outcome == "generated" and second == first
    signal.refresh_from_db()
    assert signal.outcome == first  # the journal keeps the first decision
    traded = 1 if first in ("dry_run", "submitted") else 0
    assert Trade.objects.filter(signal=signal).count() == traded
    assert Order.objects.filter(signal=signal, role="entry").count() == traded
