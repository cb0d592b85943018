"""Drift ledger: a paper session replayed through the live pipeline drifts by exactly zero
from its own simulation; against a paper broker that fills every order 2 cents worse, the
ledger shows those 2 cents on every entry and on every market exit of the same bar, in price
and in basis points (stops and targets are re-anchored on the fill: 2 cents higher live)."""

from contextlib import contextmanager
from datetime import date
from decimal import Decimal

import pytest

from analytics.drift import drift_ledger_update
from analytics.models import DriftEntry, DriftStatus
from marketdata.replay import replay_bars, synthetic_sessions

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
SESSION_DAYS = (date(2024, 5, 10), date(2024, 5, 10))
NOW = "2024-05-10T21:00:00+00:00"
CENTS = Decimal("0.02")


@contextmanager
def fills_two_cents_worse(monkeypatch):
    """The paper broker's fills (the core's paper fill step, `trading.core.lifecycle`), each
    2 cents worse: buys pay more, sells get less. Only while the live session replays: the
    simulation afterwards fills honestly."""
    import trading.core.lifecycle as lifecycle

    honest = lifecycle.bar_fills

    def worse(orders, bar, costs, filled_on_bar=None, span=None):
        out = []
        for order, qty, price in honest(orders, bar, costs, filled_on_bar, span=span):
            out.append((order, qty, price + CENTS if order.side == "buy" else price - CENTS))
        return out

    with monkeypatch.context() as patch:
        patch.setattr(lifecycle, "bar_fills", worse)
        yield


@pytest.fixture
def paper_session(settings, tmp_path, monkeypatch):
    settings.EVENTS_JOURNAL = tmp_path / "events.jsonl"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.RISK_MAX_CONCURRENT = 3
    from strategies.feature_store import engines_reset

    engines_reset()

    def run(worse=False):
        bars = synthetic_sessions(symbol="SPY", sessions=1, seed=21, end=SESSION_DAYS[-1])
        if worse:
            with fills_two_cents_worse(monkeypatch):
                stats = replay_bars(bars, speed=0)
        else:
            stats = replay_bars(bars, speed=0)
        assert stats.skipped == 0
        from datetime import datetime

        return drift_ledger_update(symbols=["SPY"], start=SESSION_DAYS[0], end=SESSION_DAYS[-1],
                                   now=datetime.fromisoformat(NOW))  # fmt: skip

    return run


def test_a_paper_session_has_zero_drift_from_its_simulation(paper_session, settings, caplog):
    import logging

    settings.DRIFT_ALERT_BPS = 0.01
    settings.DRIFT_ALERT_MIN_TRADES = 1
    with caplog.at_level(logging.INFO, logger="wiring.alerts"):
        summary = paper_session()
    assert not any("alert drift" in r.getMessage() for r in caplog.records)
    entries = list(DriftEntry.objects.all())
    matched = [e for e in entries if e.status == DriftStatus.MATCHED]
    assert len(matched) >= 2, summary
    assert all(e.status == DriftStatus.MATCHED for e in entries)  # no missed, no live-only
    for e in matched:
        assert e.live_entry_price == e.sim_entry_price
        assert e.live_entry_ts == e.sim_entry_ts
        assert e.entry_slippage_bps == 0.0 and e.entry_delay_sec == 0.0
        if e.sim_exit_price is not None:
            assert e.live_exit_price == e.sim_exit_price and e.exit_slippage_bps == 0.0
            assert e.exit_delay_sec == 0.0 and e.live_pnl == e.sim_pnl
        for leg in e.legs:
            assert (leg["live_ts"], leg["live_price"]) == (leg["sim_ts"], leg["sim_price"])
        assert e.trade_id is not None
    s = summary["all"]
    assert s["entry_slippage_bps"] == 0.0 and s["exit_slippage_bps"] == 0.0
    assert s["missed"] == 0 and s["live_only"] == 0


def _cents(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def test_a_broker_filling_two_cents_worse_shows_exactly_two_cents(paper_session, settings, caplog):
    import logging

    from prometheus_client import REGISTRY

    settings.DRIFT_ALERT_BPS = 0.3  # 2 cents on a $440 share is 0.45 bps
    settings.DRIFT_ALERT_MIN_TRADES = 1
    settings.ALERT_WEBHOOK_URL = ""  # alert_send logs instead of posting
    with caplog.at_level(logging.INFO, logger="wiring.alerts"):
        summary = paper_session(worse=True)
    matched = list(DriftEntry.objects.filter(status=DriftStatus.MATCHED))
    assert len(matched) >= 2, summary
    assert DriftEntry.objects.exclude(status=DriftStatus.MATCHED).count() == 0
    for e in matched:
        assert e.live_entry_price - e.sim_entry_price == CENTS
        assert e.entry_slippage_bps == pytest.approx(float(CENTS / e.sim_entry_price * 10000))
        assert e.live_entry_ts == e.sim_entry_ts  # same bars, only the price moved
    legs = [(e, leg) for e in matched for leg in e.legs]
    assert legs
    level_moved = ("stop", "target_one", "target_two")
    for _, leg in legs:
        diff = _cents(leg["sim_price"]) - _cents(leg["live_price"])
        if leg["reason"] == "stop" and leg["live_ts"] == leg["sim_ts"]:
            # the levels are re-anchored on the fill: live's stop sits 2 cents higher (its
            # entry cost 2 cents more), so its fill, 2 cents worse, lands where the
            # simulation's did; 2 cents apart only when the bar opened through both stops
            assert diff in (Decimal("0"), CENTS), leg
        elif leg["live_ts"] == leg["sim_ts"]:
            assert diff == CENTS, leg  # a market exit on the same bar: 2 cents worse
        else:
            # a level 2 cents higher (stop, targets) may be reached on another bar
            assert leg["reason"] in level_moved, leg
    market = [
        e for e in matched
        if len(e.legs) == 1 and e.legs[0]["reason"] not in level_moved
    ]  # fmt: skip
    assert market
    for e in market:  # single-leg clock and signal exits: exactly 2 cents worse
        assert e.sim_exit_price - e.live_exit_price == CENTS
        assert e.exit_slippage_bps == pytest.approx(float(CENTS / e.sim_exit_price * 10000))
    assert any(diff_leg["live_ts"] == diff_leg["sim_ts"] for _, diff_leg in legs)
    want = sum(float(CENTS / e.sim_entry_price * 10000) for e in matched) / len(matched)
    assert summary["all"]["entry_slippage_bps"] == pytest.approx(want, abs=1e-3)
    # past DRIFT_ALERT_BPS: an alert, and the gauges /metrics shows
    assert any("alert drift" in r.getMessage() for r in caplog.records)
    got = REGISTRY.get_sample_value(
        "autotrader_drift_slippage_bps", {"setup": "ALL", "leg": "entry"}
    )
    assert got == pytest.approx(summary["all"]["entry_slippage_bps"])


@pytest.mark.django_db
def test_the_drift_ledger_runs_daily_after_the_close():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from django_celery_beat.models import PeriodicTask

    from analytics.apps import _schedules_ensure
    from analytics.tasks import drift_ledger_daily

    _schedules_ensure(sender=None)
    task = PeriodicTask.objects.get(name="autotrader: drift ledger")
    assert task.task == drift_ledger_daily.name  # the beat entry names the real task
    cron = task.crontab
    assert (cron.day_of_week, str(cron.timezone)) == ("1-5", "UTC")
    new_york = ZoneInfo("America/New_York")
    for day in (datetime(2026, 1, 15), datetime(2026, 7, 15)):  # EST and EDT
        run = day.replace(hour=int(cron.hour), minute=int(cron.minute), tzinfo=ZoneInfo("UTC"))
        local = run.astimezone(new_york)
        assert (local.hour, local.minute) > (16, 0), local  # the regular session has closed
