"""The dashboard page, its login and its trading-state write."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from analytics.dashboard_selectors import ChartSeries, account_summary, chart_time
from marketdata.replay import synthetic_sessions
from marketdata.services import bars_upsert
from risk.models import TradingState, TradingStateChange
from trading.models import Position

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader(client):
    user = get_user_model().objects.create_user(username="trader", password="pw-123456")
    user.user_permissions.add(Permission.objects.get(codename="can_trade"))
    client.force_login(user)
    return user


def test_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def test_a_non_staff_trader_can_log_in(client):
    get_user_model().objects.create_user(username="desk", password="pw-123456")
    response = client.post("/login/?next=/", {"username": "desk", "password": "pw-123456"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_page_embeds_the_first_snapshot_and_the_halt_controls(client, trader):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="initial-snapshot"' in body
    assert 'id="btn-halt"' in body
    assert "lightweight-charts.standalone.production.js" in body


def test_halt_from_the_page_is_audited(client, trader):
    response = client.post("/dashboard/trading-state", {"state": "halted", "reason": "news"})
    assert response.status_code == 200
    assert response.json()["trading_state"]["state"] == "HALTED"
    assert TradingState.objects.get().state == "HALTED"
    change = TradingStateChange.objects.get()
    assert (change.from_state, change.to_state, change.actor) == ("ACTIVE", "HALTED", "dashboard")
    assert change.changed_by == trader


def test_halt_needs_the_trading_permission(client):
    user = get_user_model().objects.create_user(username="viewer", password="pw-123456")
    client.force_login(user)
    assert client.post("/dashboard/trading-state", {"state": "HALTED"}).status_code == 403
    assert not TradingState.objects.exists()


def test_unknown_state_is_refused(client, trader):
    response = client.post("/dashboard/trading-state", {"state": "PANIC"})
    assert response.status_code == 400
    assert "ACTIVE" in response.json()["error"]


def test_chart_time_is_new_york_wall_time():
    # 14:30 UTC on 2026-03-06 is 09:30 EST; on 2026-03-10 (after DST) 13:30 UTC is 09:30 EDT.
    nine_thirty = datetime(2026, 3, 6, 9, 30, tzinfo=UTC).timestamp()
    assert chart_time(datetime(2026, 3, 6, 14, 30, tzinfo=UTC)) == nine_thirty
    nine_thirty_dst = datetime(2026, 3, 10, 9, 30, tzinfo=UTC).timestamp()
    assert chart_time(datetime(2026, 3, 10, 13, 30, tzinfo=UTC)) == nine_thirty_dst


def test_chart_breaks_the_vwap_line_between_sessions():
    bars = synthetic_sessions(symbol="SPY", sessions=2, seed=5, end=date(2026, 3, 6))
    bars_upsert(bars=bars)
    series = ChartSeries("SPY").load()
    assert len(series["candles"]) == len(bars)
    vwap = series["lines"]["vwap"]
    hidden = [point for point in vwap if point.get("color") == "transparent"]
    assert len(hidden) == 1  # one break: the segment from the first session's last point
    index = vwap.index(hidden[0])
    assert hidden[0]["time"] == chart_time(bars[389].ts)
    assert vwap[index + 1]["time"] == chart_time(bars[390].ts)


def test_account_from_the_paper_ledger_without_a_broker_snapshot(settings):
    settings.PAPER_STARTING_CASH_USD = Decimal("10000")
    Position.objects.create(
        symbol="SPY",
        qty=10,
        avg_price=Decimal("500"),
        last_price=Decimal("505"),
        realized_pnl=Decimal("20"),
    )
    summary = account_summary(now=datetime(2026, 3, 6, 15, 0, tzinfo=UTC))
    assert summary["source"] == "ledger"
    assert summary["cash"] == "5020.00"  # 10000 + 20 realized - 10 x 500 held
    assert summary["equity"] == "10070.00"  # + 50 unrealized
    assert summary["unrealized"] == "50.00"
