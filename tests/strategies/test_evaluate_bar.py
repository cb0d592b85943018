"""evaluate_bar: the contract later stages code against."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest

from marketdata.services import bars_upsert
from strategies.models import FeatureSnapshot, Signal
from strategies.services import evaluate_bar, signal_outcome_set, signals_preview
from tests.strategies import sequences
from tests.strategies.conftest import et, make_bars

pytestmark = pytest.mark.django_db

DAY = date(2024, 3, 5)


def _cross_session(symbol="SPY"):
    """60 falling closes then a rise: ema_20 crosses above ema_50 on one bar."""
    closes = [100 - 0.05 * i for i in range(60)] + [97 + 0.2 * i for i in range(40)]
    bars = make_bars(symbol, et(DAY, "09:30"), closes)
    bars_upsert(bars=bars)
    return bars


def test_evaluate_bar_fires_ema_cross_once_and_is_idempotent(settings):
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    bars = _cross_session()
    fired = []
    for b in bars:
        for s in evaluate_bar(symbol="SPY", bar_ts=b.ts):
            fired.append(s)
    assert [s.setup for s in fired] == ["EMA_CROSS"]
    s = fired[0]
    assert s.outcome == "generated"
    assert s.execution_symbol == "SPY"
    assert s.stop_price < s.entry_price < s.target_one < s.target_two
    assert s.features["exec_atr"] > 0
    # idempotent: the same bar again yields nothing, one snapshot per bar
    assert evaluate_bar(symbol="SPY", bar_ts=s.bar_ts) == []
    assert FeatureSnapshot.objects.filter(symbol="SPY").count() == len(bars)
    lines = settings.EVENTS_JOURNAL.read_text().splitlines()
    assert json.loads(lines[-1])["setup"] == "EMA_CROSS"


def test_signal_outcome_set_appends_checks_and_reasons(settings):
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    bars = _cross_session()
    signal = next(s for b in bars for s in evaluate_bar(symbol="SPY", bar_ts=b.ts))
    out = signal_outcome_set(
        signal=signal,
        outcome="risk_blocked",
        checks=[{"stage": "risk", "code": "MAX_CONCURRENT", "passed": False, "message": "3/3"}],
    )
    assert out.outcome == "risk_blocked"
    assert out.reasons == ["MAX_CONCURRENT"]
    assert Signal.objects.get(pk=signal.pk).checks[-1]["code"] == "MAX_CONCURRENT"


def test_signals_preview_reports_every_setup(settings):
    _cross_session()
    rows = signals_preview(symbols=["SPY"], now=et(DAY, "11:30") + timedelta(minutes=1))
    assert {r["setup"] for r in rows} == set(settings.ENABLED_SETUPS)
    assert all(r["status"] in {"fired", "not_fired", "warming_up"} for r in rows)


def _metric(setup: str, outcome: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "autotrader_signal_total", {"setup": setup, "outcome": outcome}
    )
    return value or 0.0


def test_signals_are_counted_by_setup_and_outcome(settings):
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    bars = _cross_session()
    generated, dry_run = _metric("EMA_CROSS", "generated"), _metric("EMA_CROSS", "dry_run")
    (signal,) = [s for b in bars for s in evaluate_bar(symbol="SPY", bar_ts=b.ts)]
    signal_outcome_set(signal=signal, outcome="dry_run", qty=7)
    assert _metric("EMA_CROSS", "generated") == generated + 1
    assert _metric("EMA_CROSS", "dry_run") == dry_run + 1
    assert Signal.objects.get(pk=signal.pk).qty == 7
    events = [json.loads(x) for x in settings.EVENTS_JOURNAL.read_text().splitlines()]
    assert [e["outcome"] for e in events] == ["generated", "dry_run"]


def test_unknown_outcome_is_refused(settings):
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    bars = _cross_session()
    (signal,) = [s for b in bars for s in evaluate_bar(symbol="SPY", bar_ts=b.ts)]
    with pytest.raises(ValueError, match="unknown signal outcome"):
        signal_outcome_set(signal=signal, outcome="maybe")


def test_extended_hours_and_missing_bars_are_skipped_without_signals(settings):
    pre = make_bars("SPY", et(DAY, "08:00"), [100.0, 100.5])
    bars_upsert(bars=pre)
    assert evaluate_bar(symbol="SPY", bar_ts=pre[0].ts) == []
    assert not FeatureSnapshot.objects.exists()
    assert evaluate_bar(symbol="SPY", bar_ts=et(DAY, "10:00")) == []  # not stored
    assert not FeatureSnapshot.objects.filter(bar_ts=et(DAY, "10:00")).exists()


def test_celery_task_evaluates_the_stored_bar(settings):
    from strategies.tasks import evaluate_bar_task

    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    bars = _cross_session()
    ids = []
    for b in bars:
        ids += evaluate_bar_task.delay("SPY", b.ts.isoformat()).get()
    assert ids == list(Signal.objects.values_list("pk", flat=True))
    assert len(ids) == 1


def test_preview_of_a_firing_setup_lists_its_checks_and_writes_nothing(settings):
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    seq = sequences.ema_cross()
    bars_upsert(bars=seq.bars)
    cross = next(b for b in seq.bars if b.ts == seq.expected)
    (row,) = signals_preview(symbols=["SPY"], now=cross.ts + timedelta(seconds=30))
    assert row["status"] == "fired" and row["bar_ts"] == cross.ts
    assert row["outcome"] == "generated"
    assert {c["code"] for c in row["checks"]} >= {"SETUP_FIRED", "OPTIONS_UNAVAILABLE"}
    assert row["entry_price"] == Decimal("101.00") and row["stop_price"] < row["entry_price"]
    assert not Signal.objects.exists() and not FeatureSnapshot.objects.exists()


def test_preview_without_data_says_so():
    rows = signals_preview(symbols=["QQQ"], now=et(DAY, "10:00"))
    assert {r["status"] for r in rows} == {"no_data"}


def test_losing_the_race_to_another_worker_returns_nothing(settings, monkeypatch):
    """Both workers passed the 'already evaluated?' check; the second insert loses cleanly."""
    import strategies.services as services_module

    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    seq = sequences.ema_cross()
    bars_upsert(bars=seq.bars)
    for b in seq.bars:
        if b.ts == seq.expected:
            break
        evaluate_bar(symbol="SPY", bar_ts=b.ts)
    real = services_module.features_at

    def other_worker_wins(symbol, bar_ts, cfg):
        row = real(symbol, bar_ts, cfg)
        FeatureSnapshot.objects.create(symbol=symbol, bar_ts=bar_ts, features={"by": "other"})
        return row

    monkeypatch.setattr(services_module, "features_at", other_worker_wins)
    assert evaluate_bar(symbol="SPY", bar_ts=seq.expected) == []
    assert not Signal.objects.exists()
    assert FeatureSnapshot.objects.get(symbol="SPY", bar_ts=seq.expected).features == {
        "by": "other"
    }
