"""Several worker processes deciding at the same instant on PostgreSQL never exceed the
limits: the decision lock (pg_advisory_xact_lock) serialises exposure → decide → record.

A control run with the lock disabled shows the race is real (the test can fail)."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime

import pytest
from django.db import connections

from strategies.models import Signal
from tests.trading.deciders import EIGHT_SETUPS, race_window_widen
from tests.trading.helpers import make_signal, minutes
from trading.models import Trade

pytestmark = pytest.mark.django_db(transaction=True)
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)
WORKERS = 8
SETUPS = EIGHT_SETUPS


def _decide(signal_id: int, barrier, results, disable_lock: bool) -> None:
    from decimal import Decimal

    from risk.config import RiskConfig
    from trading import pipeline

    race_window_widen(disable_lock=disable_lock)
    config = RiskConfig(risk_per_trade_usd=Decimal("100"), max_concurrent=3, max_open_orders=50)
    signal = Signal.objects.get(pk=signal_id)
    barrier.wait()
    results.put(pipeline.signal_handle(signal=signal, now=minutes(T, 1), config=config))
    connections.close_all()


def _run(disable_lock: bool) -> list[str]:
    ids = [
        make_signal(bar_ts=minutes(T, i // len(set(SETUPS))), setup=setup).pk
        for i, setup in enumerate(SETUPS)
    ]
    connections.close_all()  # children open their own connections
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_decide, args=(i, barrier, results, disable_lock)) for i in ids]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


def test_concurrent_deciders_never_exceed_max_concurrent(paper):
    outcomes = _run(disable_lock=False)
    assert sorted(outcomes).count("dry_run") == 3
    assert sorted(outcomes).count("risk_blocked") == WORKERS - 3
    assert Trade.objects.count() == 3
    blocked = Signal.objects.filter(outcome="risk_blocked")
    assert all("MAX_CONCURRENT" in s.reasons for s in blocked)


def test_control_without_the_lock_the_limit_is_breached(paper):
    outcomes = _run(disable_lock=True)
    assert outcomes.count("dry_run") > 3
