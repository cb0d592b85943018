"""The admin console: every model's list page renders, overrides validate, state changes are
audited, bars are read-only."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from tests.api.conftest import T0, make_order, make_signal

pytestmark = pytest.mark.django_db

OUR_APPS = {"marketdata", "strategies", "risk", "trading", "analytics"}


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", password="boss-pass-1")
    client.force_login(user)
    client.user = user
    return client


def test_every_model_of_our_apps_is_registered():
    missing = [
        m._meta.label
        for m in apps.get_models()
        if m._meta.app_label in OUR_APPS and m not in admin.site._registry
    ]
    assert missing == []


def test_every_changelist_renders(staff):
    make_signal()
    make_order()
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert staff.get(url).status_code == 200, url


def test_signal_list_filters_and_shows_reasons(staff):
    make_signal(outcome="risk_blocked", reasons=["MAX_CONCURRENT", "WINDOW"])
    url = reverse("admin:strategies_signal_changelist")
    html = staff.get(url, {"outcome": "risk_blocked", "setup": "EMA_CROSS"}).content.decode()
    assert "MAX_CONCURRENT, WINDOW" in html


def test_symbol_override_is_validated_by_the_model(staff):
    from risk.models import SymbolOverride

    url = reverse("admin:risk_symboloverride_add")
    bad = {"symbol": "aapl", "enabled": "on", "stop_pct": "1.5"}
    resp = staff.post(url, bad)
    assert resp.status_code == 200 and "must be a fraction between 0 and 1" in resp.content.decode()
    assert not SymbolOverride.objects.exists()
    resp = staff.post(url, {"symbol": "aapl", "enabled": "on", "stop_pct": "0.0125"})
    assert resp.status_code == 302
    assert SymbolOverride.objects.get().symbol == "AAPL"


def test_trading_state_change_in_admin_is_audited(staff):
    from risk.models import TradingState, TradingStateChange

    url = reverse("admin:risk_tradingstate_add")
    resp = staff.post(url, {"account": "default", "state": "HALTED", "reason": "news"})
    assert resp.status_code == 302
    assert TradingState.objects.get().state == "HALTED"
    change = TradingStateChange.objects.get()
    assert (change.from_state, change.to_state, change.actor) == ("ACTIVE", "HALTED", "boss")
    changelist = reverse("admin:risk_tradingstate_changelist")
    row = TradingState.objects.get()
    resp = staff.post(changelist, {"action": "set_active", "_selected_action": [row.pk]})
    assert resp.status_code == 302
    assert TradingState.objects.get().state == "ACTIVE"
    assert TradingStateChange.objects.count() == 2


def test_bars_are_read_only(staff):
    from marketdata.models import Bar

    bar = Bar.objects.create(symbol="SPY", ts=T0, open=1, high=2, low=0.5, close=1.5)
    assert staff.get(reverse("admin:marketdata_bar_add")).status_code == 403
    url = reverse("admin:marketdata_bar_change", args=[bar.pk])
    resp = staff.post(url, {"symbol": "QQQ"})
    assert resp.status_code == 403
    assert Bar.objects.get().symbol == "SPY"


def test_position_shows_unrealised_pnl(staff):
    from decimal import Decimal

    from trading.models import Position

    Position.objects.create(
        symbol="SPY", qty=10, avg_price=Decimal("100"), last_price=Decimal("101.5")
    )
    html = staff.get(reverse("admin:trading_position_changelist")).content.decode()
    assert "15.0" in html


def test_order_cancel_action_calls_the_service(staff):
    working = make_order(status="open", broker_order_id="P-test-admin")  # accepted: has its id
    done = make_order(status="filled")
    url = reverse("admin:trading_order_changelist")
    resp = staff.post(url, {"action": "cancel_orders", "_selected_action": [working.pk, done.pk]})
    assert resp.status_code == 302
    working.refresh_from_db()
    done.refresh_from_db()
    assert working.status == "cancelled" and done.status == "filled"
    assert working.events.filter(to_status="cancelled").exists()


def test_order_cancel_action_needs_can_trade(client, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("clerk", password="clerk-pass-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_order"))
    user.user_permissions.add(Permission.objects.get(codename="change_order"))
    client.force_login(user)
    order = make_order(status="open")
    url = reverse("admin:trading_order_changelist")
    client.post(url, {"action": "cancel_orders", "_selected_action": [order.pk]})
    order.refresh_from_db()
    assert order.status == "open"
