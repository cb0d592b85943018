"""trade/dryrun, bracket/preview and bracket/place with the spec's curl bodies (paper broker)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.conftest import T0

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _session_clock(settings):
    from autotrader_site.clock import MarketClock

    MarketClock.set_replay_time(T0 + timedelta(hours=1))  # Monday 11:00 New York
    settings.DRY_RUN = True
    yield
    MarketClock.set_replay_time(None)


@pytest.fixture
def spy_bar():
    from marketdata.models import Bar

    return Bar.objects.create(
        symbol="AAPL", ts=T0 + timedelta(minutes=59), open=235, high=235.5, low=234.8, close=235.1
    )


def test_dryrun_spec_example(reader):
    body = {"symbol": "AAPL", "side": "buy", "qty": 1, "type": "market"}
    resp = reader.post("/api/v1/trade/dryrun", body, format="json")
    assert resp.status_code == 200, resp.content
    out = resp.json()
    assert out["valid"] is True and out["dry_run"] is True
    assert out["request"]["symbol"] == "AAPL" and out["request"]["type"] == "market"
    assert "risk" in out


def test_dryrun_stores_nothing(reader):
    from trading.models import Order

    reader.post("/api/v1/trade/dryrun", {"symbol": "SPY", "side": "sell", "qty": 3}, format="json")
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"side": "buy", "qty": 1}, "symbol"),
        ({"symbol": "AAPL", "side": "hold", "qty": 1}, "side"),
        ({"symbol": "AAPL", "side": "buy", "qty": 0}, "qty"),
        ({"symbol": "AAPL", "side": "buy", "qty": 1.5}, "qty"),
        ({"symbol": "AAPL", "side": "buy", "qty": 1, "type": "moc"}, "type"),
        ({"symbol": "AAPL", "side": "buy", "qty": 1, "type": "limit"}, "price"),
        ({"symbol": "AAPL", "side": "buy", "qty": 1, "type": "limit", "price": -2}, "price"),
        ({"symbol": "AAPL", "side": "buy", "qty": 1, "type": "stop"}, "stop"),
        ({"symbol": "AA PL", "side": "buy", "qty": 1}, "symbol"),
    ],
)
def test_dryrun_bad_input_is_400(reader, body, field):
    resp = reader.post("/api/v1/trade/dryrun", body, format="json")
    assert resp.status_code == 400
    assert field in resp.json()


def test_dryrun_needs_login(anon):
    body = {"symbol": "AAPL", "side": "buy", "qty": 1, "type": "market"}
    assert anon.post("/api/v1/trade/dryrun", body, format="json").status_code in (401, 403)


def test_bracket_preview_spec_example_with_price(reader):
    resp = reader.get(
        "/api/v1/bracket/preview?symbol=AAPL&qty=1&stop_pct=0.01&tp_pct=0.02&price=235.10"
    )
    assert resp.status_code == 200, resp.content
    out = resp.json()
    assert out["stop"] == "232.75" and out["target"] == "239.80"
    assert out["qty"] == 1 and "approved" in out and isinstance(out["checks"], list)


def test_bracket_preview_uses_the_last_bar(reader, spy_bar):
    out = reader.get("/api/v1/bracket/preview?symbol=AAPL&qty=1&stop_pct=0.01&tp_pct=0.02").json()
    assert out["price"] == "235.10"


def test_bracket_preview_without_price_data_is_400_on_price(reader):
    resp = reader.get("/api/v1/bracket/preview?symbol=ZZZZ&qty=1&stop_pct=0.01&tp_pct=0.02")
    assert resp.status_code == 400 and "price" in resp.json()


@pytest.mark.parametrize(
    "query,field",
    [
        ("symbol=AAPL&qty=1&stop_pct=1.5&tp_pct=0.02", "stop_pct"),
        ("symbol=AAPL&qty=1&stop_pct=0&tp_pct=0.02", "stop_pct"),
        ("symbol=AAPL&qty=1&stop_pct=0.01&tp_pct=-1", "tp_pct"),
        ("symbol=AAPL&qty=-1&stop_pct=0.01&tp_pct=0.02", "qty"),
        ("symbol=AAPL&qty=1&stop_pct=0.01&tp_pct=0.02&price=0", "price"),
        ("qty=1&stop_pct=0.01&tp_pct=0.02", "symbol"),
        ("symbol=AAPL&qty=1&price=235", "stop_pct"),
    ],
)
def test_bracket_preview_bad_input_is_400(reader, query, field):
    resp = reader.get(f"/api/v1/bracket/preview?{query}")
    assert resp.status_code == 400
    assert field in resp.json()


def test_bracket_place_spec_market_example(trader, spy_bar):
    from trading.models import AuditEvent, Order

    body = {"symbol": "AAPL", "qty": 1, "type": "market", "stop_pct": 0.01, "tp_pct": 0.02}
    resp = trader.post("/api/v1/bracket/place", body, format="json")
    assert resp.status_code == 200, resp.content
    out = resp.json()
    assert out["placed"] is True, out
    assert out["dry_run"] is True and out["forced"] is False
    entry = Order.objects.get(pk=out["order_id"])
    assert entry.order_class == "otoco" and entry.children.count() == 2
    assert AuditEvent.objects.get(action="bracket_place").user == trader.user


def test_bracket_place_spec_limit_example(trader):
    body = {
        "symbol": "AAPL",
        "qty": 1,
        "type": "limit",
        "price": 235.10,
        "stop_pct": 0.01,
        "tp_pct": 0.02,
    }
    resp = trader.post("/api/v1/bracket/place", body, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["placed"] is True


def test_bracket_place_refused_by_risk_answers_placed_false(trader, settings):
    settings.SYMBOL_BLACKLIST = ["AAPL"]
    body = {"symbol": "AAPL", "qty": 1, "price": 235.1, "type": "limit"}
    body.update({"stop_pct": 0.01, "tp_pct": 0.02})
    out = trader.post("/api/v1/bracket/place", body, format="json").json()
    assert out["placed"] is False and out["reasons"]


def test_force_needs_a_superuser_and_is_audited(trader, superuser, settings):
    from trading.models import AuditEvent

    settings.SYMBOL_BLACKLIST = ["AAPL"]
    body = {"symbol": "AAPL", "qty": 1, "type": "limit", "price": 235.1}
    body.update({"stop_pct": 0.01, "tp_pct": 0.02, "force": True})
    assert trader.post("/api/v1/bracket/place", body, format="json").status_code == 403
    assert not AuditEvent.objects.exists()
    resp = superuser.post("/api/v1/bracket/place", body, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["placed"] is True and resp.json()["forced"] is True
    event = AuditEvent.objects.get(action="bracket_place_forced")
    assert event.user == superuser.user and event.details["force"] is True


def test_bracket_place_needs_permission(reader, anon):
    from trading.models import Order

    body = {"symbol": "AAPL", "qty": 1, "type": "limit", "price": 235.1}
    body.update({"stop_pct": 0.01, "tp_pct": 0.02})
    assert reader.post("/api/v1/bracket/place", body, format="json").status_code == 403
    assert anon.post("/api/v1/bracket/place", body, format="json").status_code in (401, 403)
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"symbol": "AAPL", "qty": 1, "type": "limit", "stop_pct": 0.01, "tp_pct": 0.02}, "price"),
        ({"symbol": "AAPL", "qty": 1, "type": "stop", "price": 1}, "type"),
        ({"symbol": "AAPL", "qty": "x", "price": 1, "type": "limit"}, "qty"),
        ({"symbol": "AAPL", "qty": 1, "price": 1, "type": "limit", "stop_pct": 2}, "stop_pct"),
        ({"symbol": "AAPL", "qty": 1, "price": 1, "type": "limit", "force": "maybe"}, "force"),
    ],
)
def test_bracket_place_bad_input_is_400(trader, body, field):
    resp = trader.post("/api/v1/bracket/place", body, format="json")
    assert resp.status_code == 400
    assert field in resp.json()


def test_bracket_place_that_tradier_would_refuse_is_400_naming_the_rule(trader, spy_bar):
    """stop_pct=0.999999 puts the stop at 0.00: no stop order can carry it. Refused before any
    row is written, with the rule's name."""
    from trading.models import Order, Trade

    body = {"symbol": "AAPL", "qty": 1, "type": "market", "stop_pct": 0.999999, "tp_pct": 0.02}
    resp = trader.post("/api/v1/bracket/place", body, format="json")
    assert resp.status_code == 400, resp.content
    out = resp.json()
    assert out.get("rule") == "stop_required" and "stop[2]" in out, out
    assert not Order.objects.exists() and not Trade.objects.exists()
