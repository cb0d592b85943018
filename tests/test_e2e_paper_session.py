"""The first end-to-end path: replay → stored bars → setups → risk → paper broker → ledger."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import date

import pytest

from marketdata.models import Bar
from marketdata.replay import read_bars_csv, replay_bars, synthetic_sessions
from strategies.models import Signal
from tests.conftest import ROOT
from trading.models import Fill, Order, OrderStatus, Trade

pytestmark = pytest.mark.django_db(transaction=True)

SESSION_END = date(2025, 9, 19)


def _synthetic(sessions: int = 2):
    return synthetic_sessions(symbol="SPY", sessions=sessions, seed=7, end=SESSION_END)


def test_replay_produces_signals_orders_fills_and_trades_on_postgresql():
    from django.db import connection

    assert connection.vendor == "postgresql"
    bars = _synthetic()
    stats = replay_bars(bars)
    assert stats.published == len(bars) and stats.skipped == 0
    assert Bar.objects.filter(symbol="SPY").count() == len(bars)

    signals = Signal.objects.filter(symbol="SPY")
    assert signals.filter(setup="EMA_CROSS").exists()
    traded = signals.filter(outcome="dry_run")
    assert traded.exists(), list(signals.values_list("setup", "outcome", "reasons"))
    # Every approved signal became exactly one entry order tagged from the signal.
    for signal in traded:
        entries = Order.objects.filter(signal=signal, role="entry")
        assert entries.count() == 1
        assert entries.get().tag == signal.tag
    filled = Order.objects.filter(status=OrderStatus.FILLED)
    assert filled.exists()
    assert Fill.objects.filter(order__in=filled).exists()
    assert Trade.objects.exclude(status="pending").exists()
    # Blocked signals say why.
    for signal in signals.filter(outcome="risk_blocked"):
        assert signal.reasons


def test_replaying_the_same_bars_twice_sends_no_second_order():
    bars = _synthetic(sessions=1)
    replay_bars(bars)
    orders_before = Order.objects.count()
    signals_before = Signal.objects.count()
    assert orders_before > 0
    replay_bars(bars)
    assert Order.objects.count() == orders_before
    assert Signal.objects.count() == signals_before


def test_malformed_csv_rows_are_skipped_with_their_line_number(tmp_path, caplog):
    path = tmp_path / "bars.csv"
    path.write_text(
        "ts,open,high,low,close,volume\n"
        "2025-09-19T13:30:00Z,100,101,99.5,100.5,1000\n"
        "2025-09-19T13:31:00Z,abc,101,99.5,100.5,1000\n"
        "2025-09-19T13:32:00Zx,100,101,99.5,100.5,1000\n"
        "2025-09-19T13:33:00Z,100,99,99.5,100.5,1000\n"
        "2025-09-19T13:34:00Z,100.5,101,100,100.8,-5\n"
        "2025-09-19T13:35:00Z,100.8,101.2,100.6,101.0,900\n"
    )
    with caplog.at_level(logging.WARNING, logger="marketdata.replay"):
        bars = list(read_bars_csv(path, symbol="SPY"))
    assert [b.ts.minute for b in bars] == [30, 35]
    messages = [r.getMessage() for r in caplog.records]
    for line in (3, 4, 5, 6):
        assert any(f"line {line} skipped" in m for m in messages), messages
    stats = replay_bars(bars)
    assert stats.published == 2


@pytest.mark.django_db(transaction=False)
def test_embedded_default_session_runs_on_sqlite(tmp_path):
    """`make run`'s command with DATABASE_URL and REDIS_URL unset: SQLite, in-process tasks."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER", "TEST_DB_NAME"}
    }
    env.update(STATE_DIR=str(tmp_path), AUTOTRADER_ENV_FILE="/nonexistent", REPLAY_SESSIONS="2")
    manage = [sys.executable, "manage.py"]
    run = lambda *args: subprocess.run(  # noqa: E731
        manage + list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert run("migrate", "--noinput").returncode == 0
    result = run("run_paper_session", "--no-serve", "--speed", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Replay finished" in result.stdout
    count = run(
        "shell",
        "-c",
        "from trading.models import Order, WorkerHeartbeat; from strategies.models import Signal;"
        "print(Order.objects.count(), Signal.objects.filter(outcome='dry_run').count(),"
        " WorkerHeartbeat.objects.filter(name__startswith='embedded@').count());"
        "from trading.selectors import reconciliation_last; print(reconciliation_last()['ok'])",
    )
    *_, counts, reconciled = count.stdout.strip().splitlines()
    orders, dry_run, beats = (int(x) for x in counts.split())
    assert reconciled == "True"  # the embedded worker reconciled before trading
    assert orders >= 1 and dry_run >= 1
    assert beats == 1  # the embedded process reports itself as the worker
    assert (tmp_path / "autotrader.sqlite3").exists()
