"""diag/health, orders and signals: the endpoints the end-to-end path depends on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from tests.api.conftest import T0, make_order, make_signal

pytestmark = pytest.mark.django_db


def test_health_is_open_and_reports_each_check(anon):
    from trading.models import WorkerHeartbeat

    WorkerHeartbeat.objects.create(name="worker@host", at=T0)
    resp = anon.get("/api/v1/diag/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["worker"]["name"] == "worker@host"
    assert "last_bar" in body["checks"]
    assert body["status"] in {"ok", "degraded"}


def test_health_reports_redis_when_configured(anon, settings):
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL not set")
    body = anon.get("/api/v1/diag/health").json()
    assert body["checks"]["redis"]["ok"] is True


def test_health_answers_503_when_redis_is_unreachable(anon, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    resp = anon.get("/api/v1/diag/health")
    assert resp.status_code == 503
    assert resp.json()["checks"]["redis"]["ok"] is False


def _close_pool():
    """With DB_POOL_MAX_SIZE the pool would keep serving its open connections."""
    if getattr(connection, "pool", None) is not None:
        connection.close_pool()


@pytest.mark.django_db(transaction=True)
def test_health_answers_503_when_the_database_is_down(anon):
    if connection.vendor != "postgresql":
        pytest.skip("needs a database server to take away")
    saved = dict(connection.settings_dict)
    connection.close()
    _close_pool()
    connection.settings_dict["PORT"] = "1"  # nothing listens there: a real connection failure
    connection.settings_dict["HOST"] = "127.0.0.1"
    try:
        resp = anon.get("/api/v1/diag/health")
    finally:
        connection.close()
        connection.settings_dict.update(saved)
        _close_pool()
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "down"
    assert body["checks"]["database"]["ok"] is False


def test_orders_need_login(anon):
    assert anon.get("/api/v1/orders").status_code in (401, 403)


def test_orders_list_newest_first_and_filter_by_symbol(reader):
    make_order(symbol="SPY")
    make_order(symbol="QQQ", status="open")
    resp = reader.get("/api/v1/orders?limit=100")
    assert resp.status_code == 200
    body = resp.json()
    assert [o["symbol"] for o in body["results"]] == ["QQQ", "SPY"]
    assert body["next"] is None and body["previous"] is None
    only = reader.get("/api/v1/orders?symbol=spy").json()
    assert [o["symbol"] for o in only["results"]] == ["SPY"]
    assert len(reader.get("/api/v1/orders?status=open").json()["results"]) == 1


def test_orders_bad_filter_is_400_with_field_errors(reader):
    resp = reader.get("/api/v1/orders?symbol=NOT A SYMBOL")
    assert resp.status_code == 400
    assert "symbol" in resp.json()
    resp = reader.get("/api/v1/orders?status=bogus")
    assert resp.status_code == 400
    assert "status" in resp.json()


def test_order_detail_has_payloads(reader):
    order = make_order(request_payload={"class": "equity"}, response_payload={"id": 7})
    body = reader.get(f"/api/v1/orders/{order.pk}").json()
    assert body["request_payload"] == {"class": "equity"}
    assert body["events"] == [] and body["fills"] == []
    assert reader.get("/api/v1/orders/999999").status_code == 404


def test_signals_list_paginates_and_filters(reader):
    for i in range(5):
        make_signal(
            bar_ts=T0 + timedelta(minutes=i), outcome="risk_blocked" if i % 2 else "approved"
        )
    make_signal(setup="ORB", symbol="QQQ", execution_symbol="QQQ")
    resp = reader.get("/api/v1/signals?limit=2")
    assert resp.status_code == 200
    body = resp.json()
    assert len(body["results"]) == 2 and body["next"] and "count" not in body
    assert reader.get("/api/v1/signals?limit=2&count=true").json()["count"] == 6
    assert len(reader.get("/api/v1/signals?setup=ORB").json()["results"]) == 1
    assert len(reader.get("/api/v1/signals?outcome=risk_blocked").json()["results"]) == 2
    since = (T0 + timedelta(minutes=3)).isoformat()
    spy_since = reader.get("/api/v1/signals", {"since": since, "symbol": "SPY"}).json()
    assert len(spy_since["results"]) == 2
    first = reader.get("/api/v1/signals?limit=1").json()["results"][0]
    assert {"reasons", "checks", "outcome", "setup"} <= set(first)


def test_signals_bad_filters_are_400(reader):
    resp = reader.get("/api/v1/signals?setup=NOPE&since=yesterday")
    assert resp.status_code == 400
    assert {"setup", "since"} <= set(resp.json())


def test_signals_need_login(anon):
    assert anon.get("/api/v1/signals").status_code in (401, 403)


def test_signals_preview_without_data_lists_each_setup(reader, settings):
    resp = reader.get("/api/v1/signals?preview=1&symbols=spy,qqq")
    assert resp.status_code == 200
    body = resp.json()
    assert body["mode"] == "preview"
    assert {r["symbol"] for r in body["results"]} == {"SPY", "QQQ"}
    assert {r["status"] for r in body["results"]} == {"no_data"}
    assert body["count"] == 2 * len(settings.ENABLED_SETUPS)


def test_signals_preview_attaches_risk_checks_to_a_fired_setup(reader, monkeypatch):
    from risk import views as risk_views

    fired = {
        "symbol": "SPX",
        "setup": "ORB",
        "status": "fired",
        "execution_symbol": "SPY",
        "entry_price": 500.0,
        "stop_price": 498.0,
        "reasons": [],
        "checks": [],
    }
    monkeypatch.setattr(
        risk_views.strategy_services, "signals_preview", lambda symbols=None: [dict(fired)]
    )
    (item,) = reader.get("/api/v1/signals?preview=true").json()["results"]
    assert item["risk"]["symbol"] == "SPY"
    assert item["risk"]["price"] == "500.0"
    assert {"approved", "qty", "checks", "reasons"} <= set(item["risk"])


def test_signals_preview_bad_symbols_is_400(reader):
    resp = reader.get("/api/v1/signals?preview=1&symbols=SPY,@@")
    assert resp.status_code == 400 and "symbols" in resp.json()
    assert reader.get("/api/v1/signals?preview=maybe").status_code == 400


def test_empty_symbol_is_an_error_not_all_symbols(trader):
    from trading.models import Order

    make_order(symbol="SPY", status="open")
    resp = trader.post("/api/v1/orders/cancel_all?symbol=")
    assert resp.status_code == 400 and "symbol" in resp.json()
    assert trader.post("/api/v1/positions/flatten?symbol=").status_code == 400
    assert Order.objects.get().status == "open"


def test_unknown_api_path_is_a_json_404(reader):
    resp = reader.get("/api/v1/orders/a/b/c")
    assert resp.status_code == 404 and resp.json() == {"detail": "Not found."}


def test_signals_preview_path(reader):
    body = reader.get("/api/v1/signals/preview?symbols=SPY").json()
    assert body["mode"] == "preview" and {r["symbol"] for r in body["results"]} == {"SPY"}


def test_schema_documents_error_answers(reader):
    schema = reader.get("/api/schema/?format=json").json()
    cancel = schema["paths"]["/api/v1/orders/{order_id}/cancel"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "409", "429"} <= set(cancel)
    symbol = next(
        p
        for p in schema["paths"]["/api/v1/risk/preview"]["get"]["parameters"]
        if p["name"] == "symbol"
    )
    assert symbol["schema"]["pattern"] and symbol["schema"]["minLength"] == 1
    assert reader.get("/api/docs/").status_code == 200
