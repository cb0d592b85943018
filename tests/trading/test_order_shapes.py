"""The order-shape validator encodes Tradier's documented rules (one rule per case, each named),
runs before every POST, agrees with the stricter fake, and a market-entry bracket is sent as a
marketable limit on the Tradier path and still fills at the next bar on the paper path."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.brokers.base import Leg, OrderRequest, Quote
from trading.brokers.order_shapes import (
    OrderShapeError,
    marketable_limit_price,
    validate,
    with_marketable_entry,
)
from trading.brokers.tradier import order_form

D = Decimal


def eq(**kw):
    base = dict(symbol="SPY", side="buy", qty=10, order_type="limit", price=D("450"), tag="t-1")
    base.update(kw)
    return OrderRequest(**base)


def bracket(entry="limit", tp="limit", sl="stop", cls="otoco", **kw):
    prices = {"limit": (D("459"), None), "stop": (None, D("445.50")), "market": (None, None)}
    prices["stop_limit"] = (D("445"), D("445.50"))
    entry_price = {"limit": (D("450"), None), "stop": (None, D("451")), "market": (None, None)}
    entry_price["stop_limit"] = (D("451.20"), D("451"))
    legs = [
        Leg("SPY", kw.pop("side0", "buy"), 10, entry, *entry_price[entry]),
        Leg(kw.pop("sym1", "SPY"), kw.pop("side1", "sell"), 10, tp, *prices[tp]),
        Leg(kw.pop("sym2", "SPY"), "sell", 10, sl, *prices[sl]),
    ]
    if cls in ("oco", "oto"):
        legs = legs[1:] if cls == "oco" else legs[:2]
    return OrderRequest(
        symbol="SPY",
        side=legs[0].side,
        qty=10,
        order_type=legs[0].order_type,
        tag=kw.pop("tag", "b-1"),
        order_class=cls,
        legs=tuple(legs),
        **kw,
    )


@pytest.mark.parametrize(
    ("request_", "rule"),
    [
        (eq(order_class="option"), "class_invalid"),
        (eq(duration="week"), "duration_invalid"),
        (eq(tag=""), "tag_missing"),
        (eq(tag="a" * 256), "tag_too_long"),
        (eq(tag="at_SPY 1"), "tag_charset"),
        (eq(side="short"), "side_invalid"),
        (eq(qty=D("1.5")), "quantity_not_whole"),
        (eq(qty=0), "quantity_not_positive"),
        (eq(order_type="trailing_stop"), "type_invalid"),
        (eq(price=None), "price_required"),
        (eq(order_type="stop", price=None, side="sell"), "stop_required"),
        (eq(order_type="stop_limit", stop=D("449"), price=None), "price_required"),
        (eq(price=D("450.001")), "price_tick"),
        (bracket(entry="market"), "otoco_first_leg_market"),
        (bracket(tp="market"), "otoco_exit_leg_market"),
        (bracket(sl="limit"), "otoco_same_type"),
        (bracket(sym2="QQQ"), "otoco_symbol_mismatch"),
        (bracket(side1="buy"), "bracket_exit_side"),
        (bracket(cls="oco", tp="market"), "oco_leg_market"),
        (bracket(cls="oco", sl="limit"), "oco_same_type"),
        (bracket(cls="oco", sym2="QQQ"), "oco_symbol_mismatch"),
        (bracket(cls="oto", entry="market"), "oto_first_leg_market"),
        (
            OrderRequest("SPY", "buy", 1, "limit", "b-2", D("1"), order_class="otoco"),
            "otoco_leg_count",
        ),
    ],
)
def test_each_documented_rule_is_refused_by_name(request_, rule):
    with pytest.raises(OrderShapeError) as err:
        validate(request_)
    assert err.value.rule == rule
    assert err.value.as_dict()["rule"] == rule and err.value.http_status == 400


@pytest.mark.parametrize(
    "request_",
    [
        eq(),
        eq(order_type="market", price=None),
        eq(price=D("0.5123")),  # sub-dollar: four decimals are a valid tick
        eq(tag="a" * 255),
        bracket(),
        bracket(entry="stop", sl="stop_limit"),
        bracket(entry="stop_limit", tp="limit", sl="stop"),
        bracket(cls="oco"),
        bracket(cls="oto", tp="market"),  # OTO: the second order may be market
    ],
)
def test_documented_valid_shapes_pass(request_):
    assert validate(request_) is None


def test_the_strict_fake_agrees_with_the_validator_on_every_case():
    """Both implementations (ours and the fake's, written from the same pages) agree: what the
    validator passes the fake accepts, what it refuses the fake refuses (tag-less aside)."""
    import httpx

    from tests.trading.fake_tradier import FakeTradier

    fake = FakeTradier()
    client = httpx.Client(transport=fake.transport(), base_url="http://127.0.0.1/v1/")
    cases = [
        bracket(),
        bracket(entry="market"),
        bracket(tp="market"),
        bracket(sl="limit"),
        bracket(sym2="QQQ"),
        bracket(cls="oco"),
        bracket(cls="oco", tp="market"),
        bracket(cls="oto", tp="market"),
        bracket(cls="oto", entry="market"),
        eq(),
        eq(price=None),
        eq(tag="bad tag"),
    ]
    for index, case in enumerate(cases):
        case = OrderRequest(**{**case.__dict__, "tag": case.tag.replace("b-1", f"b-{index}")})
        try:
            validate(case)
            ours = True
        except OrderShapeError:
            ours = False
        answer = client.post(
            f"accounts/{fake.account}/orders",
            data=order_form(case),
            headers={"Authorization": "Bearer test-token"},
        )
        assert (answer.status_code == 200) == ours, (case, answer.text)


def test_marketable_limit_prices_cross_the_spread_and_round_away():
    quote = Quote("SPY", bid=D("450.00"), ask=D("450.02"), last=D("450.01"))
    assert marketable_limit_price("buy", quote, D("0.05")) == D("450.07")
    assert marketable_limit_price("sell", quote, D("0.05")) == D("449.95")
    odd = Quote("SPY", bid=D("10.003"), ask=D("10.004"), last=None)
    assert marketable_limit_price("buy", odd, D("0")) == D("10.01")  # up to the cent
    assert marketable_limit_price("sell", odd, D("0")) == D("10.00")  # down to the cent
    no_touch = Quote("SPY", bid=None, ask=None, last=D("450.10"))
    assert marketable_limit_price("buy", no_touch, D("0.05")) == D("450.15")
    with pytest.raises(OrderShapeError) as err:
        marketable_limit_price("buy", None, D("0.05"))
    assert err.value.rule == "entry_price_unknown"


def test_market_entry_bracket_becomes_a_valid_limit_entry():
    request = bracket(entry="market")
    shaped = with_marketable_entry(request, Quote("SPY", D("450.00"), D("450.02"), None), D("0.05"))
    assert shaped.legs[0].order_type == "limit" and shaped.legs[0].price == D("450.07")
    assert shaped.legs[1:] == request.legs[1:] and shaped.tag == request.tag
    assert validate(shaped) is None
    assert with_marketable_entry(bracket(), None, D("0.05")) == bracket()  # nothing to shape


def test_tradier_path_sends_the_market_bracket_as_a_marketable_limit(fake_tradier):
    """The spec's first example (a forced market bracket) is placed and its exits link."""
    fake_tradier.quote("SPY", "450.00", "450.02")
    ack = fake_tradier.broker.submit(bracket(entry="market"))
    placed = fake_tradier.orders[int(ack.id)]
    assert placed["leg"][0]["type"] == "limit" and placed["leg"][0]["price"] == 450.07
    assert ack.order_type == "limit" and ack.price == D("450.07")
    # marketable: it filled on the current touch, at the ask (not at its cap)
    assert placed["leg"][0]["status"] == "filled" and placed["leg"][0]["avg_fill_price"] == 450.02
    assert fake_tradier.rejections == []


def test_invalid_shape_is_never_posted(fake_tradier):
    with pytest.raises(OrderShapeError):
        fake_tradier.broker.submit(bracket(sl="limit"))
    assert fake_tradier.post_attempts == 0


@pytest.mark.django_db
def test_bracket_api_market_entry_places_on_tradier_and_paper(fake_tradier, settings):
    """Through the bracket service: the Tradier path sends a limit leg 0; the paper path (no
    quote source but the bar store) accepts the same request and keeps a market entry that
    the fill model fills on the next bar."""
    from datetime import UTC, datetime

    from trading.brokers import broker_override
    from trading.brokers.paper import PaperBroker
    from trading.models import Order
    from trading.services import bracket_place

    now = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)
    fake_tradier.quote("AAPL", "186.08", "186.09")
    live = bracket_place(
        symbol="AAPL", qty=5, stop_pct="0.01", tp_pct="0.02", price="186.08", now=now
    )
    assert live["placed"], live
    sent = fake_tradier.orders[int(Order.objects.get(pk=live["order_id"]).broker_order_id)]
    assert sent["leg"][0]["type"] == "limit" and sent["leg"][0]["price"] == 186.14
    broker_override(PaperBroker())
    try:
        paper = bracket_place(
            symbol="AAPL", qty=5, stop_pct="0.01", tp_pct="0.02", price="186.08", now=now
        )
    finally:
        broker_override(None)
    assert paper["placed"] and paper["dry_run"], paper
    assert Order.objects.get(pk=paper["order_id"]).order_type == "market"


def test_protection_pairs_cover_every_share_with_exactly_one_stop():
    from trading.brokers.order_shapes import protection_pairs

    pairs = protection_pairs(
        symbol="SPY", held=10, partial=5, stop=D("449"), t1=D("451"), t2=D("453"), tag="at-x"
    )
    assert [(r.order_class, r.legs[0].qty, r.legs[1].price) for r in pairs] == [
        ("oco", 5, D("451")),
        ("oco", 5, D("453")),
    ]
    assert all(r.legs[0].order_type == "stop" and r.legs[0].stop == D("449") for r in pairs)
    assert sum(r.legs[0].qty for r in pairs) == 10
    # a partial fill of 3 of 10 planned shares: the T1 part is capped by what is held
    small = protection_pairs(
        symbol="SPY", held=3, partial=5, stop=D("449"), t1=D("451"), t2=None, tag="at-y"
    )
    assert [(r.order_class, r.qty) for r in small] == [("oco", 3)]
    only_stop = protection_pairs(
        symbol="SPY", held=4, partial=2, stop=D("449"), t1=None, t2=None, tag="at-z"
    )
    assert [(r.order_class, r.order_type, r.qty) for r in only_stop] == [("equity", "stop", 4)]
    with pytest.raises(OrderShapeError):  # a target not on the tick cannot be sent
        protection_pairs(
            symbol="SPY", held=2, partial=1, stop=D("449"), t1=D("451.001"), t2=None, tag="at-w"
        )
