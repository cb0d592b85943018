"""A daily-loss halt is a day's halt: it lifts at the next trading day's open (market calendar),
back into the state it replaced, on the clock of the live/paper path; an operator's halt never
lifts by itself. Day 1 is Wednesday 2025-09-17 (EDT = UTC-4); its next open is Thursday
2025-09-18 09:30 New York = 13:30 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from risk.calendar import next_day_open
from risk.config import RiskConfig
from risk.models import TradingStateChange
from risk.selectors import trading_state_get
from risk.services import trading_state_set
from tests.trading.helpers import bar, make_signal, minutes
from trading.models import Trade
from trading.pipeline import clock_tick, kill_switch_check, paper_bar_process, signal_handle

D = Decimal
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)  # Wednesday 10:00 New York
NEXT_OPEN = datetime(2025, 9, 18, 13, 30, tzinfo=UTC)  # Thursday 09:30 New York
LIMIT = RiskConfig(max_daily_loss_usd=D("150"))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Wednesday 15:50 EDT -> Thursday 09:30 EDT
        (datetime(2025, 9, 17, 19, 50, tzinfo=UTC), datetime(2025, 9, 18, 13, 30, tzinfo=UTC)),
        # Friday -> Monday
        (datetime(2025, 9, 19, 15, 0, tzinfo=UTC), datetime(2025, 9, 22, 13, 30, tzinfo=UTC)),
        # Thursday 2025-07-03 (early close) -> Friday July 4th is a holiday -> Monday 07-07
        (datetime(2025, 7, 3, 15, 0, tzinfo=UTC), datetime(2025, 7, 7, 13, 30, tzinfo=UTC)),
        # Wednesday before Thanksgiving -> Friday 11-28 09:30 EST = 14:30 UTC
        (datetime(2025, 11, 26, 16, 0, tzinfo=UTC), datetime(2025, 11, 28, 14, 30, tzinfo=UTC)),
        # a halt before the open still ends the next day, never at the same day's open
        (datetime(2025, 9, 17, 12, 0, tzinfo=UTC), datetime(2025, 9, 18, 13, 30, tzinfo=UTC)),
    ],
)
def test_a_daily_halt_resumes_at_the_next_trading_days_open(now, expected):
    assert next_day_open(now) == expected


def _open_trade():
    # opened without a limit (a trade risking 100 under a 150 limit is allowed anyway)
    signal = make_signal(bar_ts=T, setup="EMA_CROSS")
    signal_handle(signal=signal, now=minutes(T, 1), config=RiskConfig())
    paper_bar_process(bar=bar(minutes(T, 1), "100.1", "100.2", "100.0", "100.1"), config=LIMIT)
    return Trade.objects.get(signal=signal)


def _halt_by_the_daily_loss(before_the_loss=None):
    """Entry 100.1 + 2 bps = 100.12002, rounded up against the buyer: 100.13 (100 shares); a
    mark at 98.50 is 100 x -1.63 = -163 <= -150: the kill switch halts and places the flatten,
    filled on the next bar's open 98.50 - 2 bps = 98.4803, rounded down: 98.48."""
    from trading.services import bar_mark

    trade = _open_trade()
    assert trade.entry_price == D("100.13")
    if before_the_loss is not None:
        before_the_loss()
    bar_mark(symbol="SPY", price=D("98.50"))
    assert kill_switch_check(now=minutes(T, 3), config=LIMIT) is True
    paper_bar_process(bar=bar(minutes(T, 3), "98.5", "98.6", "98.4", "98.5"), config=LIMIT)
    trade.refresh_from_db()
    assert trade.status == "closed" and trade.exit_reason == "kill_switch"
    assert trade.remaining_qty == 0
    return trade


@pytest.mark.django_db
def test_the_daily_loss_halt_lifts_at_the_next_open_and_trading_resumes(paper):
    _halt_by_the_daily_loss()
    state = trading_state_get()
    assert (state.state, state.resume_at, state.resume_state) == ("HALTED", NEXT_OPEN, "ACTIVE")
    from risk.serializers import TradingStateOutputSerializer
    from risk.views import _state_payload

    shown = TradingStateOutputSerializer(_state_payload()).data  # GET trading/state
    assert (shown["resume_at"], shown["resume_state"]) == ("2025-09-18T13:30:00Z", "ACTIVE")
    # the same day, and the next day one minute before the open: still halted
    blocked = make_signal(bar_ts=minutes(T, 10), setup="ORB")
    assert signal_handle(signal=blocked, now=minutes(T, 11), config=LIMIT) == "risk_blocked"
    blocked.refresh_from_db()
    assert "TRADING_HALTED" in blocked.reasons
    clock_tick(now=datetime(2025, 9, 18, 13, 29, tzinfo=UTC), config=LIMIT)
    assert trading_state_get().state == "HALTED"
    # the clock at the open lifts it (nothing is alive: the flatten left nothing behind)
    clock_tick(now=NEXT_OPEN, config=LIMIT)
    state = trading_state_get()
    assert (state.state, state.resume_at, state.resume_state) == ("ACTIVE", None, "")
    lifted = TradingStateChange.objects.first()  # newest first
    assert (lifted.from_state, lifted.to_state, lifted.actor) == ("HALTED", "ACTIVE", "kill-switch")
    # day 2 starts at P&L 0: a trade risking 100 under the 150 limit is approved
    day2 = make_signal(bar_ts=minutes(NEXT_OPEN, 5), setup="ORB")
    assert signal_handle(signal=day2, now=minutes(NEXT_OPEN, 6), config=LIMIT) != "risk_blocked"
    assert Trade.objects.filter(signal=day2).exists()


@pytest.mark.django_db
def test_the_halt_lifts_into_the_state_it_replaced(paper):
    _halt_by_the_daily_loss(before_the_loss=lambda: trading_state_set(
        state="REDUCING", reason="ops: exits only today", actor="ops"
    ))  # fmt: skip
    assert trading_state_get().resume_state == "REDUCING"
    clock_tick(now=NEXT_OPEN, config=LIMIT)
    assert trading_state_get().state == "REDUCING"


@pytest.mark.django_db
def test_an_operator_halt_never_lifts_by_itself(paper):
    trading_state_set(state="HALTED", reason="ops: news", actor="ops")
    assert trading_state_get().resume_at is None
    for day in (18, 19, 22):
        clock_tick(now=datetime(2025, 9, day, 13, 30, tzinfo=UTC), config=LIMIT)
        clock_tick(now=datetime(2025, 9, day, 15, 0, tzinfo=UTC), config=LIMIT)
    assert trading_state_get().state == "HALTED"


@pytest.mark.django_db
def test_an_operator_halt_after_the_kill_switch_keeps_the_account_halted(paper):
    _halt_by_the_daily_loss()
    assert trading_state_get().resume_at == NEXT_OPEN
    # the operator takes over the halt (same state, own reason): it no longer lifts itself
    trading_state_set(state="HALTED", reason="ops: investigate the loss", actor="ops")
    assert trading_state_get().resume_at is None
    clock_tick(now=NEXT_OPEN, config=LIMIT)
    assert trading_state_get().state == "HALTED"


@pytest.mark.django_db
def test_only_a_halt_may_lift_by_itself():
    with pytest.raises(ValueError):
        trading_state_set(state="REDUCING", resume_at=NEXT_OPEN, resume_state="ACTIVE")


@pytest.mark.django_db
def test_a_quiet_clock_tick_reads_once_and_a_due_halt_still_lifts(paper):
    """A replay's tick asks whether anything is alive and whether a halt is due: one round
    trip when neither (most minutes of a session and every minute of a night)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from trading.orm_ledger import OrmLedger

    with CaptureQueriesContext(connection) as quiet:
        assert clock_tick(now=T, config=LIMIT) == 0
    assert len(quiet.captured_queries) == 1
    assert OrmLedger().tick_read() == (False, None)

    _halt_by_the_daily_loss()  # flat again, HALTED until the next open
    assert OrmLedger().tick_read() == (False, (NEXT_OPEN, "ACTIVE"))
    clock_tick(now=minutes(NEXT_OPEN, -1), config=LIMIT)
    assert trading_state_get().state == "HALTED"  # not due yet
    clock_tick(now=NEXT_OPEN, config=LIMIT)
    assert trading_state_get().state == "ACTIVE"
    assert OrmLedger().tick_read() == (False, None)
