"""evaluate_bar: the contract later stages code against."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from marketdata.services import bars_upsert
from strategies.models import FeatureSnapshot, Signal
from strategies.services import evaluate_bar, signal_outcome_set, signals_preview
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
