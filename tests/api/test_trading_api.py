"""Order actions, positions, flatten and balances through the API (paper broker)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from tests.api.conftest import T0, make_order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _market_clock(settings):
    from autotrader_site.clock import MarketClock

    MarketClock.set_replay_time(T0 + timedelta(hours=1))
    yield
    MarketClock.set_replay_time(None)


def test_order_detail_by_id_broker_id_or_tag(reader):
    order = make_order(broker_order_id="8812345", tag="at-SPY-EMACROSS-202503031500-entry")
    for key in (str(order.pk), "8812345", "at-SPY-EMACROSS-202503031500-entry"):
        resp = reader.get(f"/api/v1/orders/{key}")
        assert resp.status_code == 200, key
        assert resp.json()["id"] == order.pk
    assert reader.get("/api/v1/orders/nope").status_code == 404


def test_cancel_a_working_order(trader):
    from trading.models import Order

    # a working order the broker accepted carries its broker id (the paper broker's "P…"): one
    # without an id is in flight or of unknown outcome, and is not cancelled in the ledger alone
    order = make_order(
        status="open", order_type="limit", price=Decimal("1.00"), broker_order_id="P-test-cancel"
    )
    resp = trader.post(f"/api/v1/orders/{order.pk}/cancel")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "cancelled"
    assert Order.objects.get(pk=order.pk).status == "cancelled"
    assert order.events.filter(to_status="cancelled").exists()


def test_cancel_a_filled_order_is_409(trader):
    order = make_order(status="filled")
    assert trader.post(f"/api/v1/orders/{order.pk}/cancel").status_code == 409


def test_cancel_needs_permission(reader, anon):
    order = make_order(status="open")
    assert reader.post(f"/api/v1/orders/{order.pk}/cancel").status_code == 403
    assert anon.post(f"/api/v1/orders/{order.pk}/cancel").status_code in (401, 403)
    assert reader.post("/api/v1/orders/cancel_all").status_code == 403
    assert reader.post("/api/v1/orders/cancel_stale?minutes=5").status_code == 403
    assert reader.post("/api/v1/positions/flatten").status_code == 403
    order.refresh_from_db()
    assert order.status == "open"


def test_cancel_all_by_symbol_is_audited(trader):
    from trading.models import AuditEvent

    spy = make_order(symbol="SPY", status="open", broker_order_id="P-test-spy")
    qqq = make_order(symbol="QQQ", status="open", broker_order_id="P-test-qqq")
    resp = trader.post("/api/v1/orders/cancel_all?symbol=SPY")
    assert resp.status_code == 200
    assert resp.json()["cancelled"] == [spy.pk]
    qqq.refresh_from_db()
    assert qqq.status == "open"
    assert AuditEvent.objects.get(action="orders_cancel_all").user == trader.user
    assert trader.post("/api/v1/orders/cancel_all").json()["cancelled"] == [qqq.pk]


def test_cancel_all_bad_symbol_is_400(trader):
    resp = trader.post("/api/v1/orders/cancel_all?symbol=NOT+OK")
    assert resp.status_code == 400 and "symbol" in resp.json()


def test_cancel_stale_only_old_orders(trader):
    now = T0 + timedelta(hours=1)
    old = make_order(status="open", created_at=now - timedelta(minutes=90))
    fresh = make_order(status="open", created_at=now - timedelta(minutes=5))
    resp = trader.post("/api/v1/orders/cancel_stale?minutes=60")
    assert resp.status_code == 200
    assert resp.json() == {"cancelled": [old.pk], "minutes": 60}
    fresh.refresh_from_db()
    assert fresh.status == "open"


@pytest.mark.parametrize("minutes", ["0", "-1", "abc", "1.5"])
def test_cancel_stale_bad_minutes_is_400(trader, minutes):
    resp = trader.post(f"/api/v1/orders/cancel_stale?minutes={minutes}")
    assert resp.status_code == 400 and "minutes" in resp.json()


def test_positions_list_shows_unrealised_pnl(reader):
    from trading.models import Position

    Position.objects.create(
        symbol="SPY", qty=10, avg_price=Decimal("500"), last_price=Decimal("501.5")
    )
    (row,) = reader.get("/api/v1/positions").json()
    assert row["symbol"] == "SPY" and Decimal(row["unrealized_pnl"]) == Decimal("15")


def test_flatten_with_nothing_open_is_an_audited_no_op(trader):
    from trading.models import AuditEvent

    resp = trader.post("/api/v1/positions/flatten?symbol=AAPL")
    assert resp.status_code == 200
    assert resp.json() == {"trades": [], "orders": []}
    assert AuditEvent.objects.get(action="positions_flatten").details["symbol"] == "AAPL"


def test_flatten_bad_symbol_is_400(trader):
    resp = trader.post("/api/v1/positions/flatten?symbol=1ABC")
    assert resp.status_code == 400 and "symbol" in resp.json()


def test_account_balances(reader):
    resp = reader.get("/api/v1/account/balances")
    assert resp.status_code == 200
    body = resp.json()
    assert body["broker"] == "paper"
    assert Decimal(body["cash"]) > 0


def test_lists_need_login(anon):
    for url in ("/api/v1/positions", "/api/v1/account/balances", "/api/v1/fills", "/api/v1/trades"):
        assert anon.get(url).status_code in (401, 403), url


def test_session_write_without_csrf_token_is_refused(django_user_model):
    user = django_user_model.objects.create_user("csrf", password="csrf-pass-1")
    user.user_permissions.add(Permission.objects.get(codename="can_trade"))
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="csrf", password="csrf-pass-1")
    resp = client.post("/api/v1/orders/cancel_all")
    assert resp.status_code == 403 and "CSRF" in resp.json()["detail"]


def test_writes_are_throttled(trader, settings):
    from rest_framework.settings import api_settings

    rates = dict(api_settings.DEFAULT_THROTTLE_RATES)
    from autotrader_site.permissions import WriteThrottle

    WriteThrottle.THROTTLE_RATES = {**rates, "writes": "2/min"}
    try:
        codes = [trader.post("/api/v1/orders/cancel_all").status_code for _ in range(3)]
        assert trader.get("/api/v1/orders").status_code == 200  # reads are not throttled
    finally:
        WriteThrottle.THROTTLE_RATES = rates
    assert codes == [200, 200, 429]


def test_id_filters_out_of_range_are_400_not_500(reader):
    for url in (
        "/api/v1/orders?signal=1e30",
        "/api/v1/orders?trade=-1",
        "/api/v1/fills?order=9e20",
    ):
        resp = reader.get(url)
        assert resp.status_code == 400, (url, resp.status_code)
