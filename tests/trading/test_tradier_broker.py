"""The Tradier client against a local fake that validates requests as Tradier documents them
and counts submissions per tag; faults on submit never produce a second order."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from tests.trading.fake_tradier import FakeTradier
from trading.brokers.base import BrokerRejected, BrokerUnavailable, Leg, OrderRequest
from trading.brokers.tradier import parse_order

D = Decimal


def req(**kw):
    base = dict(symbol="SPY", side="buy", qty=10, order_type="market", tag="at-SPY-EMACROSS-1")
    base.update(kw)
    return OrderRequest(**base)


def otoco(tag="at-SPY-b-1", leg2_type="stop", leg0_type="market"):
    return OrderRequest(
        symbol="SPY",
        side="buy",
        qty=10,
        order_type=leg0_type,
        tag=tag,
        order_class="otoco",
        legs=(
            Leg("SPY", "buy", 10, leg0_type, price=D("450") if leg0_type == "limit" else None),
            Leg("SPY", "sell", 10, "limit", price=D("459")),
            Leg(
                "SPY",
                "sell",
                10,
                leg2_type,
                stop=D("445.5"),
                price=D("445") if leg2_type != "stop" else None,
            ),
        ),
    )


def test_market_limit_stop_and_stop_limit_are_form_encoded(fake_tradier):
    broker = fake_tradier.broker
    broker.submit(req())
    broker.submit(req(order_type="limit", price=D("450.1"), tag="t-2"))
    broker.submit(req(side="sell", order_type="stop", stop=D("440"), tag="t-3"))
    broker.submit(
        req(side="sell", order_type="stop_limit", stop=D("440"), price=D("439.5"), tag="t-4")
    )
    forms = [r.content.decode() for r in fake_tradier.requests if r.method == "POST"]
    assert (
        "class=equity" in forms[0]
        and "type=market" in forms[0]
        and "tag=at-SPY-EMACROSS-1" in forms[0]
    )
    assert "price=450.10" in forms[1]
    assert "stop=440.00" in forms[2]
    assert "stop=440.00" in forms[3] and "price=439.50" in forms[3]
    assert fake_tradier.rejections == []
    assert len(fake_tradier.orders) == 4


def test_otoco_sends_indexed_legs_that_the_fake_accepts(fake_tradier):
    fake_tradier.quote("SPY", "450.00", "450.02")
    ack = fake_tradier.broker.submit(otoco(leg0_type="limit"))
    placed = fake_tradier.orders[int(ack.id)]
    assert placed["class"] == "otoco" and len(placed["leg"]) == 3
    form = next(r for r in fake_tradier.requests if r.method == "POST").content.decode()
    for field in (
        "symbol%5B0%5D",
        "side%5B1%5D",
        "quantity%5B2%5D",
        "type%5B2%5D",
        "stop%5B2%5D",
        "price%5B1%5D",
    ):
        assert field in form


@pytest.mark.parametrize(
    "request_",
    [
        req(order_type="limit"),  # no price
        req(order_type="stop", side="sell"),  # no stop
        req(tag="bad tag!"),
        req(qty=0),
        otoco(leg2_type="limit"),  # legs 1 and 2 same type
    ],
)
def test_invalid_orders_are_refused_before_sending(fake_tradier, request_):
    with pytest.raises(BrokerRejected):
        fake_tradier.broker.submit(request_)
    assert fake_tradier.post_attempts == 0


def test_the_fake_itself_rejects_what_tradier_rejects():
    """The fake's validation is real: a hand-built bad OTOCO form is refused with 400."""
    import httpx

    fake = FakeTradier()
    client = httpx.Client(transport=fake.transport(), base_url="http://127.0.0.1/v1/")
    form = {
        "class": "otoco",
        "duration": "day",
        "tag": "x-1",
        "symbol[0]": "SPY",
        "side[0]": "buy",
        "quantity[0]": "1",
        "type[0]": "market",
        "symbol[1]": "SPY",
        "side[1]": "sell",
        "quantity[1]": "1",
        "type[1]": "market",
        "symbol[2]": "SPY",
        "side[2]": "sell",
        "quantity[2]": "1",
        "type[2]": "stop",
        "stop[2]": "1",
    }
    response = client.post(
        f"accounts/{fake.account}/orders", data=form, headers={"Authorization": "Bearer test-token"}
    )
    assert response.status_code == 400
    assert "type[0] must be one of limit, stop, stop_limit" in response.text
    assert fake.submissions == {}
    form["type[0]"], form["price[0]"] = "limit", "1.50"
    response = client.post(
        f"accounts/{fake.account}/orders", data=form, headers={"Authorization": "Bearer test-token"}
    )
    assert "type[1] must be one of limit, stop, stop_limit" in response.text  # exits too
    form["type[1]"], form["price[1]"] = "limit", "2.00"
    response = client.post(
        f"accounts/{fake.account}/orders", data=form, headers={"Authorization": "Bearer test-token"}
    )
    assert response.status_code == 200 and fake.submissions == {"x-1": 1}


def _requests_total(endpoint, status):
    value = REGISTRY.get_sample_value(
        "autotrader_tradier_request_total", {"endpoint": endpoint, "status": status}
    )
    return value or 0.0


def test_429_is_retried_and_places_one_order(fake_tradier):
    before = _requests_total("orders.create", "429")
    fake_tradier.faults = ["429", "429"]
    ack = fake_tradier.broker.submit(req())
    assert fake_tradier.submissions["at-SPY-EMACROSS-1"] == 1
    assert ack.id == str(next(iter(fake_tradier.orders)))
    assert _requests_total("orders.create", "429") - before == 2


@pytest.mark.parametrize("fault", ["500", "503", "timeout_before"])
def test_failure_before_placing_is_resent_after_the_tag_lookup(fake_tradier, fault):
    fake_tradier.faults = [fault]
    fake_tradier.broker.submit(req())
    assert fake_tradier.submissions["at-SPY-EMACROSS-1"] == 1
    assert fake_tradier.post_attempts == 2
    lookups = [
        r for r in fake_tradier.requests if r.method == "GET" and r.url.path.endswith("/orders")
    ]
    assert lookups, "the tag must be looked up before resending"


@pytest.mark.parametrize("fault", ["timeout_after_accept", "500_after_accept"])
def test_unknown_outcome_finds_the_placed_order_by_tag_and_never_doubles(fake_tradier, fault):
    fake_tradier.faults = [fault]
    ack = fake_tradier.broker.submit(req())
    assert fake_tradier.submissions["at-SPY-EMACROSS-1"] == 1
    assert fake_tradier.post_attempts == 1
    assert ack.tag == "at-SPY-EMACROSS-1" and ack.status == "open"


def test_persistent_failure_is_unavailable_not_duplicated(fake_tradier):
    fake_tradier.faults = ["503"] * 10
    with pytest.raises(BrokerUnavailable):
        fake_tradier.broker.submit(req())
    assert fake_tradier.submissions == {}


def test_cancel_modify_and_order_lookup(fake_tradier):
    broker = fake_tradier.broker
    ack = broker.submit(req(side="sell", order_type="stop", stop=D("440")))
    broker.modify(ack.id, stop=D("441.25"))
    assert fake_tradier.orders[int(ack.id)]["stop_price"] == 441.25
    order = broker.order(ack.id)
    assert order.stop == D("441.25") and order.tag == "at-SPY-EMACROSS-1"
    assert broker.cancel(ack.id).status == "canceled"
    assert broker.order(ack.id).status == "canceled"
    with pytest.raises(BrokerRejected):
        broker.cancel(ack.id)  # already cancelled: Tradier answers 400


def test_orders_list_object_list_and_null_shapes(fake_tradier):
    assert fake_tradier.broker.orders() == []
    fake_tradier.broker.submit(req())
    assert len(fake_tradier.broker.orders()) == 1
    fake_tradier.broker.submit(req(tag="t-2"))
    assert {o.tag for o in fake_tradier.broker.orders()} == {"at-SPY-EMACROSS-1", "t-2"}


def test_fixture_order_shapes_parse():
    from tests.trading.fake_tradier import fixture

    order = parse_order(fixture("get_order.json")["order"])
    assert (order.id, order.status, order.qty, order.filled_qty) == ("123456", "expired", 1, 0)
    pages = fixture("get_orders_multiple.json")
    assert [o["id"] for o in pages[0]["orders"]["order"]] == [123456, 123457]


def test_positions_single_list_and_null(fake_tradier):
    assert fake_tradier.broker.positions() == []
    fake_tradier.positions["SPY"] = {"symbol": "SPY", "quantity": 10.0, "cost_basis": 4500.0}
    assert [(p.symbol, p.qty) for p in fake_tradier.broker.positions()] == [("SPY", 10)]
    fake_tradier.positions["QQQ"] = {"symbol": "QQQ", "quantity": 5.0, "cost_basis": 1900.0}
    assert len(fake_tradier.broker.positions()) == 2


@pytest.mark.parametrize(
    ("name", "buying_power"),
    [
        ("get_balance_margin.json", D("12727.72")),
        ("get_balance_cash.json", D("4343.38")),
        ("get_balance_pdt.json", D("12727.72")),
    ],
)
def test_balances_for_margin_cash_and_pdt_accounts(fake_tradier, name, buying_power):
    fake_tradier.balances_fixture = name
    balances = fake_tradier.broker.balances()
    assert balances.cash == D("6363.86") and balances.equity == D("17798.36")
    assert balances.buying_power == buying_power


def test_quote_from_the_fixture(fake_tradier):
    quote = fake_tradier.broker.quote("AAPL")
    assert quote.bid == D("186.08") and quote.ask == D("186.09")
    assert quote.spread_bps < 1


def test_tradier_broker_is_used_when_dry_run_is_off(settings):
    from trading import brokers
    from trading.brokers.tradier import TradierBroker

    settings.DRY_RUN = False
    settings.TRADIER_ACCESS_TOKEN = "tok"
    settings.TRADIER_ACCOUNT_ID = "VA123"
    brokers._default = None
    try:
        broker = brokers.broker_get()
        assert isinstance(broker, TradierBroker) and broker.account_id == "VA123"
        assert str(broker.http.client.base_url) == settings.TRADIER_BASE_URL
        assert broker.http.client.headers["authorization"] == "Bearer tok"
    finally:
        brokers._default = None


@pytest.mark.parametrize(("settle_sec", "orders_booked"), [(2.0, 1), (0.0, 2)])
def test_an_order_booked_after_the_client_gave_up_is_not_sent_twice(settle_sec, orders_booked):
    """Every order POST times out at the client (0.15 s) and is booked 0.6 s after it arrived:
    with a settle window the resend finds the first order by its tag and returns it; without
    one (the control) the order is booked twice — the test can fail."""
    from marketdata.clients.tradier_http import TradierHTTP
    from tests.faults.fake_tradier import FakeTradier
    from trading.brokers.base import OrderRequest
    from trading.brokers.tradier import TradierBroker

    with FakeTradier(
        fault_rate=1.0,
        fault_kinds=("land_late",),
        fault_on=frozenset({"POST"}),
        late_landing_sec=0.6,
        delay_sec=0.3,
    ) as fake:
        http = TradierHTTP(base_url=fake.base_url, token="fake-token", timeout=0.15, max_retries=0)
        broker = TradierBroker(
            http=http, account_id=fake.state.account, submit_attempts=2, backoff_sec=0.05,
            settle_sec=settle_sec, marketable_offset=Decimal("0.05"),
        )  # fmt: skip
        request = OrderRequest(
            symbol="SPY", side="buy", qty=3, order_type="limit", price=Decimal("99.00"),
            tag="at-test-late-landing",
        )  # fmt: skip
        try:
            placed = broker.submit(request)
        except Exception:  # the control may give up after its resend timed out too
            placed = None
        time.sleep(1.0)  # every POST in flight has been booked
        booked = fake.state.orders_with_tag("at-test-late-landing")
    assert len(booked) == orders_booked
    if orders_booked == 1:
        assert placed is not None and placed.id == str(booked[0]["id"])
