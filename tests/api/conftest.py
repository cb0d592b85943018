"""Users and clients for the API tests: anonymous, a reader, a trader, a superuser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

T0 = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def reader(django_user_model):
    user = django_user_model.objects.create_user("reader", password="reader-pass-1")
    client = APIClient()
    client.force_authenticate(user)
    client.user = user
    return client


@pytest.fixture
def trader(django_user_model):
    user = django_user_model.objects.create_user("trader", password="trader-pass-1")
    user.user_permissions.add(Permission.objects.get(codename="can_trade"))
    user = django_user_model.objects.get(pk=user.pk)  # fresh permission cache
    client = APIClient()
    client.force_authenticate(user)
    client.user = user
    return client


@pytest.fixture
def superuser(django_user_model):
    user = django_user_model.objects.create_superuser("root", password="root-pass-1")
    client = APIClient()
    client.force_authenticate(user)
    client.user = user
    return client


def make_signal(**kw):
    from strategies.models import Signal

    values = {
        "setup": "EMA_CROSS",
        "symbol": "SPY",
        "execution_symbol": "SPY",
        "bar_ts": T0,
        "side": "buy",
        "score": 1.0,
        "entry_price": Decimal("500.10"),
        "stop_price": Decimal("499.00"),
        "qty": 10,
        "outcome": "approved",
        "reasons": [],
        "checks": [{"stage": "risk", "code": "WINDOW", "passed": True, "message": ""}],
        "features": {"ema_20": 500.0},
    }
    values.update(kw)
    return Signal.objects.create(**values)


def make_order(**kw):
    from trading.models import Order

    n = Order.objects.count()
    values = {
        "tag": f"at-test-{n}-{kw.get('symbol', 'SPY')}",
        "symbol": "SPY",
        "side": "buy",
        "qty": 10,
        "order_type": "market",
        "status": "filled",
        "created_at": T0 + timedelta(minutes=n),
    }
    values.update(kw)
    return Order.objects.create(**values)
