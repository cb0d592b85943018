"""Acceptance: a full paper day on each shared real SPY session, with all setups.

Each day starts from a fresh ledger with the previous sessions stored as history (a morning
restart), then replays the day's regular-session bars through the live path
(`process_bar_close`: paper fills → strategies → exits → risk → paper broker). Checked:
every trade has a filled entry tagged from its signal and a protective stop; after every bar no
open trade lacks a working stop (or a working exit) for its whole remaining quantity; every trade
is closed by the session close (or its time stop); the P&L ledger equals the sum of the fills;
no order is left working. Per-day counts are pinned.

By default four days run (month starts and ends, the first session after the 2011-03-13 DST
switch); ACCEPTANCE_ALL=1 runs all 43 sessions (all pinned).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

from marketdata.replay import read_bars_csv
from marketdata.services import bars_upsert
from risk.calendar import session_at
from risk.config import RiskConfig
from strategies.models import Signal
from tests.conftest import SHARED_DATA
from trading.models import Fill, Order, Position, Trade
from trading.pipeline import process_bar_close
from trading.selectors import open_trades, trade_orders

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
FILES = ("SPY_1m_2011-01.csv", "SPY_1m_2011-03.csv")
HISTORY_SESSIONS = 3
WORKING = ("new", "submitted", "open", "partially_filled")
EXIT_REASONS = {"stop", "target_two", "timeout", "session_close", "ema_cross_down", "trailing"}

# date: (signals by outcome, trades by exit reason) — pinned from a full run (ACCEPTANCE_ALL=1,
# 43 sessions, all passing the invariants). A change in the strategy engine, the risk rules,
# the fill model or the exit manager changes these; re-pin from the printed PIN lines
# (pytest -s) after checking the change is intended.
PINNED: dict[str, tuple[dict, dict]] = {
    # re-pinned, all 43, for issue 13's one fill model (branch fills: the pegged limit sees only
    # the next open, levels re-anchored on the fill, the clock rules on the clock); the 39
    # days outside DEFAULT_DAYS were already stale on main @ 33edc5d (re-pinned there for the
    # default four only)
    "2011-01-03": ({"risk_blocked": 5, "dry_run": 1}, {"stop": 1}),  # pnl -15.6800
    "2011-01-04": ({"risk_blocked": 4, "dry_run": 2}, {"stop": 2}),  # pnl -43.1200
    "2011-01-05": (
        {"risk_blocked": 20, "dry_run": 8},
        {"stop": 5, "target_two": 2, "ema_cross_down": 1},
    ),  # pnl -64.3900
    "2011-01-06": (
        {"dry_run": 21, "risk_blocked": 9},
        {"stop": 19, "target_two": 2},
    ),  # pnl -278.0900
    "2011-01-07": (
        {"dry_run": 18, "risk_blocked": 3},
        {"stop": 15, "target_two": 3},
    ),  # pnl -268.3600
    "2011-01-10": ({"risk_blocked": 8, "dry_run": 4}, {"stop": 3, "target_two": 1}),  # pnl -66.8800
    "2011-01-11": (
        {"risk_blocked": 17, "dry_run": 20},
        {"stop": 19, "ema_cross_down": 1},
    ),  # pnl -288.2300
    "2011-01-12": (
        {"risk_blocked": 26, "dry_run": 12},
        {"stop": 11, "target_two": 1},
    ),  # pnl -160.3700
    "2011-01-13": (
        {"risk_blocked": 14, "dry_run": 13},
        {"session_close": 1, "stop": 11, "timeout": 1},
    ),  # pnl -166.8400
    "2011-01-14": (
        {"risk_blocked": 17, "dry_run": 15},
        {"target_two": 6, "stop": 7, "ema_cross_down": 2},
    ),  # pnl 45.6000
    "2011-01-18": (
        {"risk_blocked": 16, "dry_run": 12},
        {"stop": 10, "target_two": 2},
    ),  # pnl -134.1600
    "2011-01-19": ({"risk_blocked": 6, "dry_run": 4}, {"stop": 4}),  # pnl -75.2700
    "2011-01-20": ({"dry_run": 5, "risk_blocked": 1}, {"stop": 4, "target_two": 1}),  # pnl -77.7400
    "2011-01-21": (
        {"risk_blocked": 21, "dry_run": 20},
        {"stop": 18, "target_two": 2},
    ),  # pnl -292.7100
    "2011-01-24": (
        {"dry_run": 19, "risk_blocked": 17},
        {"stop": 13, "target_two": 4, "timeout": 1, "ema_cross_down": 1},
    ),  # pnl -155.7400
    "2011-01-25": ({"dry_run": 9, "risk_blocked": 2}, {"stop": 9}),  # pnl -204.9300
    "2011-01-26": (
        {"risk_blocked": 12, "dry_run": 22},
        {"session_close": 1, "stop": 18, "target_two": 3},
    ),  # pnl -280.5300
    "2011-01-27": (
        {"dry_run": 14, "risk_blocked": 6},
        {"stop": 11, "target_two": 3},
    ),  # pnl -198.5200
    "2011-01-28": (
        {"dry_run": 12, "risk_blocked": 1},
        {"stop": 11, "target_two": 1},
    ),  # pnl -216.3900
    "2011-01-31": (
        {"dry_run": 12, "risk_blocked": 1},
        {"stop": 9, "target_two": 3},
    ),  # pnl -219.1800
    "2011-03-01": ({"risk_blocked": 38, "dry_run": 5}, {"stop": 5}),  # pnl -289.8500
    "2011-03-02": (
        {"risk_blocked": 1, "dry_run": 22},
        {"session_close": 1, "stop": 15, "target_two": 5, "ema_cross_down": 1},
    ),  # pnl -216.7900
    "2011-03-03": (
        {"risk_blocked": 17, "dry_run": 15},
        {"stop": 13, "timeout": 1, "target_two": 1},
    ),  # pnl -213.5700
    "2011-03-04": ({"risk_blocked": 11, "dry_run": 11}, {"stop": 11}),  # pnl -288.6900
    "2011-03-07": (
        {"risk_blocked": 4, "dry_run": 15},
        {"stop": 13, "target_two": 2},
    ),  # pnl -295.7300
    "2011-03-08": (
        {"dry_run": 17, "risk_blocked": 5},
        {"stop": 13, "target_two": 3, "timeout": 1},
    ),  # pnl -258.0400
    "2011-03-09": (
        {"risk_blocked": 5, "dry_run": 15},
        {"stop": 13, "target_two": 2},
    ),  # pnl -290.3000
    "2011-03-10": ({"dry_run": 4}, {"stop": 4}),  # pnl -108.8700
    "2011-03-11": (
        {"dry_run": 15},
        {"session_close": 1, "stop": 12, "target_two": 2},
    ),  # pnl -158.3900
    "2011-03-14": (
        {"dry_run": 7},
        {"target_two": 2, "stop": 4, "ema_cross_down": 1},
    ),  # pnl -29.9500
    "2011-03-15": ({"dry_run": 10, "risk_blocked": 1}, {"stop": 10}),  # pnl -148.1800
    "2011-03-16": ({"dry_run": 5}, {"stop": 5}),  # pnl -112.4400
    "2011-03-17": (
        {"dry_run": 18},
        {"session_close": 1, "stop": 12, "target_two": 4, "ema_cross_down": 1},
    ),  # pnl -223.0900
    "2011-03-18": (
        {"risk_blocked": 18, "dry_run": 17},
        {"stop": 14, "ema_cross_down": 2, "target_two": 1},
    ),  # pnl -296.6900
    "2011-03-21": (
        {"risk_blocked": 11, "dry_run": 19},
        {"session_close": 2, "target_two": 4, "stop": 13},
    ),  # pnl -47.2400
    "2011-03-22": (
        {"risk_blocked": 9, "dry_run": 28},
        {"stop": 24, "timeout": 1, "ema_cross_down": 1, "target_two": 2},
    ),  # pnl -296.7800
    "2011-03-23": (
        {"dry_run": 16, "risk_blocked": 1},
        {"stop": 12, "target_two": 4},
    ),  # pnl -115.9500
    "2011-03-24": (
        {"risk_blocked": 13, "dry_run": 20},
        {"stop": 14, "target_two": 4, "ema_cross_down": 1, "timeout": 1},
    ),  # pnl -287.4500
    "2011-03-25": (
        {"risk_blocked": 17, "dry_run": 27},
        {"stop": 18, "target_two": 8, "timeout": 1},
    ),  # pnl -292.7200
    "2011-03-28": (
        {"dry_run": 23, "risk_blocked": 6},
        {"stop": 19, "ema_cross_down": 2, "target_two": 2},
    ),  # pnl -288.5200
    "2011-03-29": (
        {"risk_blocked": 18, "dry_run": 7},
        {"stop": 6, "target_two": 1},
    ),  # pnl -36.6500
    "2011-03-30": (
        {"risk_blocked": 15, "dry_run": 18},
        {"session_close": 1, "stop": 15, "timeout": 1, "target_two": 1},
    ),  # pnl -173.8000
    "2011-03-31": (
        {"dry_run": 8, "risk_blocked": 10},
        {"session_close": 1, "stop": 6, "ema_cross_down": 1},
    ),  # pnl -112.8000
}
# The default run (make test): month start/end and the first session after the DST switch.
DEFAULT_DAYS = ("2011-01-03", "2011-01-31", "2011-03-14", "2011-03-31")


def _load() -> dict[date, list]:
    by_day: dict[date, list] = defaultdict(list)
    for name in FILES:
        path = SHARED_DATA / name
        if not path.exists():
            return {}
        for bar in read_bars_csv(path, symbol="SPY", source="replay"):
            session = session_at(bar.ts)
            if session is not None and session.open <= bar.ts < session.close:
                by_day[session.day].append(bar)
    return dict(sorted(by_day.items()))


DAYS = _load()
SELECTED = (
    list(DAYS)
    if os.environ.get("ACCEPTANCE_ALL")
    else [d for d in DAYS if d.isoformat() in DEFAULT_DAYS]
)


def _assert_protected(at):
    for trade in open_trades().filter(status="open"):
        stops = trade_orders(trade, roles=["stop"])
        exits = trade_orders(trade, roles=["exit", "flatten"])
        covered = sum(o.qty - o.filled_qty for o in [*stops, *exits])
        assert covered == trade.remaining_qty, (at, trade.pk, covered, trade.remaining_qty)


def _check_ledger(session):
    for trade in Trade.objects.all():
        assert trade.status in ("closed", "cancelled"), (trade.pk, trade.status)
        if trade.status == "cancelled":
            continue
        entry = Order.objects.get(trade=trade, role="entry")
        assert entry.status == "filled" and entry.tag == trade.signal.tag
        assert Order.objects.filter(trade=trade, role="stop").exists()
        assert trade.exit_reason in EXIT_REASONS, trade.exit_reason
        assert trade.closed_at <= session.close
        fills = Fill.objects.filter(order__trade=trade)
        assert sum(f.qty for f in fills if f.side == "buy") == trade.qty
        assert sum(f.qty for f in fills if f.side == "sell") == trade.qty
        pnl = sum(f.price * f.qty * (1 if f.side == "sell" else -1) for f in fills)
        assert trade.realized_pnl == pnl
    flows = sum(f.price * f.qty * (1 if f.side == "sell" else -1) for f in Fill.objects.all())
    assert sum(t.realized_pnl for t in Trade.objects.all()) == flows
    assert sum(p.realized_pnl for p in Position.objects.all()) == flows
    assert not Position.objects.exclude(qty=0).exists()
    assert not Order.objects.filter(status__in=WORKING).exists()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("day", SELECTED, ids=lambda d: d.isoformat())
def test_full_paper_day_on_a_shared_spy_session(paper, day):
    days = list(DAYS)
    index = days.index(day)
    for previous in days[max(0, index - HISTORY_SESSIONS) : index]:
        bars_upsert(bars=DAYS[previous])  # history only: warm-up, not traded
    bars = DAYS[day]
    bars_upsert(bars=bars)
    config = RiskConfig.from_settings()
    for bar in bars:
        process_bar_close(bar=bar, config=config)
        _assert_protected(bar.ts + timedelta(minutes=1))
    session = session_at(bars[-1].ts)
    assert not open_trades().exists()
    _check_ledger(session)
    outcomes = dict(
        Counter(Signal.objects.filter(bar_ts__date=day).values_list("outcome", flat=True))
    )
    exits = dict(Counter(Trade.objects.values_list("exit_reason", flat=True)))
    pnl = sum((t.realized_pnl for t in Trade.objects.all()), Decimal("0"))
    print(f"PIN {day.isoformat()!r}: ({outcomes!r}, {exits!r}),  # pnl {pnl}")
    pinned = PINNED.get(day.isoformat())
    if pinned is not None:
        assert (outcomes, exits) == pinned


def test_shared_data_absent_skips_cleanly():
    if not DAYS:
        pytest.skip("shared SPY data is not present (clone outside the workspace)")
    assert len(DAYS) == 43
