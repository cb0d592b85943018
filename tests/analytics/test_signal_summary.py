from datetime import UTC, datetime, timedelta

import pytest

from analytics import summarize_signals
from strategies.models import Signal

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)


def _signal(setup, minutes, outcome="generated", reasons=()):
    return Signal.objects.create(
        setup=setup,
        symbol="SPY",
        execution_symbol="SPY",
        bar_ts=T0 + timedelta(minutes=minutes),
        outcome=outcome,
        reasons=list(reasons),
    )


@pytest.mark.django_db
def test_summary_counts_setup_by_outcome_and_block_reasons():
    _signal("EMA_CROSS", 0, "dry_run")
    _signal("EMA_CROSS", 1, "risk_blocked", ["MAX_CONCURRENT", "WINDOW_CLOSED"])
    _signal("ORB", 2, "risk_blocked", ["MAX_CONCURRENT"])
    _signal("ORB", 3, "options_blocked", ["OPTIONS_LOW_VOLUME"])
    summary = summarize_signals()
    assert summary["total"] == 4
    assert summary["by_setup"]["EMA_CROSS"] == {
        "total": 2,
        "outcomes": {"dry_run": 1, "risk_blocked": 1},
    }
    assert summary["by_outcome"] == {"dry_run": 1, "options_blocked": 1, "risk_blocked": 2}
    assert summary["block_reasons"] == {
        "MAX_CONCURRENT": 2,
        "WINDOW_CLOSED": 1,
        "OPTIONS_LOW_VOLUME": 1,
    }
    assert summary["block_reasons_by_setup"]["ORB"] == {
        "MAX_CONCURRENT": 1,
        "OPTIONS_LOW_VOLUME": 1,
    }


@pytest.mark.django_db
def test_summary_time_range_is_half_open():
    for minute in range(5):
        _signal("EMA_CROSS", minute)
    summary = summarize_signals(T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))
    assert summary["total"] == 2
    assert summarize_signals(T0 + timedelta(minutes=10))["total"] == 0


@pytest.mark.django_db
def test_summary_is_importable_where_the_original_readme_says():
    from analytics.signals import summarize_signals as from_module

    _signal("ORB", 0, "dry_run")
    assert from_module()["by_setup"]["ORB"]["total"] == 1
