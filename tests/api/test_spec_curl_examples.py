"""Every curl example of the spec's README, as an operator with an API token would send it:
same paths, query parameters and JSON bodies; and each one refused without credentials
(except health and /metrics, which stay open)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.api.conftest import T0, make_order

pytestmark = pytest.mark.django_db

BRACKET_MARKET = {"symbol": "AAPL", "qty": 1, "type": "market", "stop_pct": 0.01, "tp_pct": 0.02}
BRACKET_LIMIT = {**BRACKET_MARKET, "type": "limit", "price": 235.10}
DRYRUN = {"symbol": "AAPL", "side": "buy", "qty": 1, "type": "market"}


def _examples(order_id: str):
    return [
        ("get", "/api/v1/diag/health", None),
        ("get", "/api/v1/diag/providers", None),
        ("get", "/metrics", None),
        ("post", "/api/v1/trade/dryrun", DRYRUN),
        ("get", "/api/v1/signals", None),
        ("get", "/api/v1/config/effective?symbol=AAPL", None),
        ("get", "/api/v1/bracket/preview?symbol=AAPL&qty=1&stop_pct=0.01&tp_pct=0.02", None),
        (
            "get",
            "/api/v1/bracket/preview?symbol=AAPL&qty=1&stop_pct=0.01&tp_pct=0.02&price=235.10",
            None,
        ),
        ("post", "/api/v1/bracket/place", BRACKET_MARKET),
        ("post", "/api/v1/bracket/place", BRACKET_LIMIT),
        ("get", "/api/v1/orders", None),
        ("get", f"/api/v1/orders/{order_id}", None),
        ("post", f"/api/v1/orders/{order_id}/cancel", None),
        ("get", "/api/v1/positions", None),
        ("get", "/api/v1/account/balances", None),
        ("post", "/api/v1/orders/cancel_all", None),
        ("post", "/api/v1/orders/cancel_all?symbol=AAPL", None),
        ("post", "/api/v1/orders/cancel_stale?minutes=60", None),
        ("post", "/api/v1/positions/flatten", None),
        ("post", "/api/v1/positions/flatten?symbol=AAPL", None),
        ("get", "/api/v1/risk/preview?symbol=AAPL&qty=1", None),
    ]


@pytest.fixture
def market(settings):
    from autotrader_site.clock import MarketClock
    from marketdata.models import Bar

    MarketClock.set_replay_time(T0 + timedelta(hours=1))
    Bar.objects.create(
        symbol="AAPL", ts=T0 + timedelta(minutes=59), open=235, high=235.4, low=234.9, close=235.1
    )
    yield
    MarketClock.set_replay_time(None)


def test_every_spec_curl_example_works_with_a_token(market, django_user_model):
    user = django_user_model.objects.create_superuser("operator", password="op-pass-123")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    order = make_order(status="open", broker_order_id="9100001")
    for method, url, body in _examples(order.broker_order_id):
        resp = (
            getattr(client, method)(url, body, format="json")
            if body
            else getattr(client, method)(url)
        )
        assert resp.status_code == 200, (method, url, resp.status_code, resp.content[:300])
        if not url.startswith("/metrics"):
            assert resp["Content-Type"].startswith("application/json"), url


def test_every_spec_curl_example_needs_credentials_except_health_and_metrics(market):
    order = make_order(status="open", broker_order_id="9100002")
    anon = APIClient()
    for method, url, body in _examples(order.broker_order_id):
        resp = (
            getattr(anon, method)(url, body, format="json") if body else getattr(anon, method)(url)
        )
        if url in ("/api/v1/diag/health", "/metrics"):
            assert resp.status_code == 200, url
        else:
            assert resp.status_code in (401, 403), (method, url, resp.status_code)
    order.refresh_from_db()
    assert order.status == "open"
