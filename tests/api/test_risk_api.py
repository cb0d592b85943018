"""config/effective, risk/preview and the trading state endpoints."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.conftest import T0

pytestmark = pytest.mark.django_db


def test_effective_config_for_a_symbol_masks_secrets(reader, settings):
    from risk.models import SymbolOverride

    settings.TRADIER_ACCESS_TOKEN = "tok-SECRET-abcdef"
    settings.TRADIER_ACCOUNT_ID = "VA12345678"
    settings.POLYGON_API_KEY = "poly-SECRET-key"
    SymbolOverride.objects.create(symbol="AAPL", qty=2)
    resp = reader.get("/api/v1/config/effective?symbol=aapl")
    assert resp.status_code == 200
    body = resp.json()
    assert body["symbol"] == "AAPL"
    assert body["values"]["qty"] == {"value": 2, "source": "override"}
    text = resp.content.decode()
    assert "SECRET" not in text and "12345678" not in text
    assert body["service"]["tradier_access_token"] == "set"
    assert body["service"]["tradier_account_id"] == "VA…5678"


def test_effective_config_without_symbol(reader):
    body = reader.get("/api/v1/config/effective").json()
    assert body["symbol"] is None and "risk_per_trade_usd" in body["values"]


def test_effective_config_bad_symbol_is_400(reader):
    resp = reader.get("/api/v1/config/effective?symbol=$$$")
    assert resp.status_code == 400 and "symbol" in resp.json()


def test_effective_config_needs_login(anon):
    assert anon.get("/api/v1/config/effective?symbol=AAPL").status_code in (401, 403)


def test_risk_preview_with_price(reader):
    resp = reader.get("/api/v1/risk/preview?symbol=AAPL&qty=1&price=235.10")
    assert resp.status_code == 200
    body = resp.json()
    assert body["symbol"] == "AAPL" and body["price"] == "235.1000"
    assert isinstance(body["checks"], list) and "approved" in body


def test_risk_preview_uses_last_bar_when_no_price(reader):
    from marketdata.models import Bar

    Bar.objects.create(symbol="SPY", ts=T0, open=1, high=2, low=0.5, close=501.25)
    Bar.objects.create(symbol="SPY", ts=T0 - timedelta(minutes=1), open=1, high=2, low=1, close=9)
    body = reader.get("/api/v1/risk/preview?symbol=SPY&qty=2").json()
    assert body["price"] == "501.25"


def test_risk_preview_without_data_says_no_price(reader):
    body = reader.get("/api/v1/risk/preview?symbol=ZZZZ&qty=1").json()
    assert body["approved"] is False and "NO_PRICE" in body["reasons"]


@pytest.mark.parametrize(
    "query,field",
    [
        ("qty=1", "symbol"),
        ("symbol=AAPL&qty=0", "qty"),
        ("symbol=AAPL&qty=1.5", "qty"),
        ("symbol=AAPL&qty=-3", "qty"),
        ("symbol=AAPL&qty=1&price=-1", "price"),
        ("symbol=AAPL&qty=1&price=abc", "price"),
        ("symbol=a%20b&qty=1", "symbol"),
    ],
)
def test_risk_preview_bad_input_is_400(reader, query, field):
    resp = reader.get(f"/api/v1/risk/preview?{query}")
    assert resp.status_code == 400
    assert field in resp.json()


def test_risk_preview_needs_login(anon):
    assert anon.get("/api/v1/risk/preview?symbol=AAPL&qty=1").status_code in (401, 403)


def test_trading_state_read_by_any_user(reader):
    body = reader.get("/api/v1/trading/state").json()
    assert body["state"] == "ACTIVE" and body["history"] == []


def test_halt_and_resume_are_audited(trader):
    resp = trader.post(
        "/api/v1/trading/state", {"state": "HALTED", "reason": "FOMC"}, format="json"
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["state"] == "HALTED" and body["reason"] == "FOMC"
    assert body["changed_by"] == "trader"
    resp = trader.post("/api/v1/trading/resume", {}, format="json")
    assert resp.json()["state"] == "ACTIVE"
    history = resp.json()["history"]
    assert [(h["from_state"], h["to_state"]) for h in history] == [
        ("HALTED", "ACTIVE"),
        ("ACTIVE", "HALTED"),
    ]
    assert trader.post("/api/v1/trading/halt").json()["state"] == "HALTED"


def test_trading_state_write_needs_permission(reader, anon):
    from risk.models import TradingState

    assert reader.post("/api/v1/trading/state", {"state": "HALTED"}).status_code == 403
    assert reader.post("/api/v1/trading/halt").status_code == 403
    assert anon.post("/api/v1/trading/halt").status_code in (401, 403)
    assert not TradingState.objects.exists()


def test_trading_state_bad_input_is_400(trader):
    resp = trader.post("/api/v1/trading/state", {"state": "PAUSED"}, format="json")
    assert resp.status_code == 400 and "state" in resp.json()
    resp = trader.post("/api/v1/trading/state", {"state": "HALTED", "reason": "x" * 300})
    assert resp.status_code == 400 and "reason" in resp.json()
