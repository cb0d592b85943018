"""Limits under concurrency on PostgreSQL, with worker processes (as
test_concurrent_deciders.py):

- the limit-to-market fallback (the broker refused the modify) running beside a deciding
  worker never lets RISK_MAX_CONCURRENT be exceeded: the replacement market order is recorded
  before the limit is cancelled, so the trade is never seen cancelled in between;
- a session policy's max_trades holds with 8 deciders at the same instant: it is re-counted
  inside the decision lock.

Each has a control run that breaks the protected sequence and shows the check bites."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from strategies.models import Signal
from tests.trading.deciders import EIGHT_SETUPS, race_window_widen
from tests.trading.helpers import make_signal, minutes
from trading.models import Order, Trade

pytestmark = pytest.mark.django_db(transaction=True)
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)  # 10:00 New York, a regular session
SETUPS = EIGHT_SETUPS
PAUSE = 1.5  # seconds a cancelled trade stays visible in a control run


def _config(**kw):
    from decimal import Decimal

    from risk.config import RiskConfig

    values = {"risk_per_trade_usd": Decimal("100"), "max_concurrent": 1, "max_open_orders": 50}
    values.update(kw)
    return RiskConfig(**values)


# --- limit-to-market fallback beside a decider -------------------------------------------------
def _escalate(order_id: int, barrier, control: bool) -> None:
    """Worker 1: the pegged entry timed out and the broker refuses the modify to market."""
    from trading.brokers import broker_get
    from trading.brokers.base import BrokerError
    from trading.core import lifecycle
    from trading.orm_ledger import OrmLedger

    broker = broker_get()

    def refuse(*args, **kwargs):
        raise BrokerError("modify refused")

    broker.modify = refuse
    ledger = OrmLedger(broker)
    real_set = ledger.trade_set

    def slow_set(trade, *, status=None, **fields):
        done = real_set(trade, status=status, **fields)
        if status == "cancelled":
            time.sleep(PAUSE)  # a decider runs while the trade is seen cancelled
        return done

    ledger.trade_set = slow_set
    order = Order.objects.get(pk=order_id)
    barrier.wait()
    time.sleep(0.3)  # the decider is already looping
    if control:  # the sequence the fallback must not use: cancel first, revive the trade
        lifecycle.cancel(ledger, order, now=minutes(T, 2), cause="control")
        Trade.objects.filter(pk=order.trade_id).update(status="pending", closed_at=None)
    else:
        lifecycle.entry_escalate(ledger, order, now=minutes(T, 2))
    connections.close_all()


def _decide_loop(barrier, results, seconds: float) -> None:
    """Worker 2: decides a fresh signal every 100 ms while the fallback runs."""
    from trading import pipeline

    barrier.wait()
    outcomes = []
    stop = time.monotonic() + seconds
    n = 0
    while time.monotonic() < stop:
        n += 1
        signal = make_signal(bar_ts=T + timedelta(seconds=n), setup=SETUPS[n % len(SETUPS)])
        outcomes.append(pipeline.signal_handle(signal=signal, now=minutes(T, 2), config=_config()))
        time.sleep(0.1)
    results.put(outcomes)
    connections.close_all()


def _fallback_beside_decider(control: bool) -> list[str]:
    from trading import pipeline

    first = make_signal(bar_ts=T, setup="ORB")
    assert pipeline.signal_handle(signal=first, now=minutes(T, 1), config=_config()) == "dry_run"
    entry = Order.objects.get(trade__signal=first, role="entry")
    assert entry.order_type == "limit" and entry.is_working  # a pegged limit, still working
    connections.close_all()
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_escalate, args=(entry.pk, barrier, control)),
        ctx.Process(target=_decide_loop, args=(barrier, results, PAUSE + 1.5)),
    ]
    for p in procs:
        p.start()
    outcomes = results.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


def test_limit_to_market_fallback_beside_a_decider_keeps_max_concurrent(paper):
    outcomes = _fallback_beside_decider(control=False)
    assert outcomes and set(outcomes) == {"risk_blocked"}
    assert Trade.objects.filter(status__in=("pending", "open")).count() == 1
    trade = Trade.objects.get(status="pending")
    entries = {o.order_type: o.status for o in trade.orders.filter(role="entry")}
    assert entries == {"limit": "cancelled", "market": "open"}  # replaced, still one trade
    assert all("MAX_CONCURRENT" in s.reasons for s in Signal.objects.filter(outcome="risk_blocked"))


def test_control_cancel_first_lets_a_decider_exceed_max_concurrent(paper):
    outcomes = _fallback_beside_decider(control=True)
    assert "dry_run" in outcomes
    assert Trade.objects.filter(status__in=("pending", "open")).count() > 1


# --- max_trades with 8 deciders ----------------------------------------------------------------
POLICY = """timezone: America/New_York
sessions:
  MORNING:
    time_window: ["09:30", "12:00"]
    max_trades: 2
"""


def _decide_once(signal_id: int, barrier, results, disable_lock: bool) -> None:
    from trading import pipeline

    race_window_widen(disable_lock=disable_lock)
    signal = Signal.objects.get(pk=signal_id)
    barrier.wait()
    config = _config(max_concurrent=8, max_positions_per_symbol=0)
    results.put(pipeline.signal_handle(signal=signal, now=minutes(T, 1), config=config))
    connections.close_all()


def _eight_deciders(settings, tmp_path, disable_lock: bool) -> list[str]:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY)
    settings.SESSION_POLICY_FILE = str(path)
    ids = [
        make_signal(bar_ts=T, setup=setup, symbol=symbol).pk
        for setup, symbol in zip(SETUPS, ["SPY", "QQQ"] * 4, strict=True)
    ]
    connections.close_all()
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(len(ids))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_decide_once, args=(pk, barrier, results, disable_lock)) for pk in ids
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


def test_max_trades_holds_with_eight_concurrent_deciders(paper, settings, tmp_path):
    outcomes = _eight_deciders(settings, tmp_path, disable_lock=False)
    assert outcomes.count("dry_run") == 2
    assert outcomes.count("policy_blocked") == 6
    assert Trade.objects.count() == 2
    blocked = Signal.objects.filter(outcome="policy_blocked")
    assert all(s.reasons == ["POLICY_MAX_TRADES"] for s in blocked)


def test_control_without_the_lock_max_trades_is_breached(paper, settings, tmp_path):
    outcomes = _eight_deciders(settings, tmp_path, disable_lock=True)
    assert outcomes.count("dry_run") > 2
