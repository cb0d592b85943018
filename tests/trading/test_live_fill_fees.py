"""Fills reported by the live broker (poll, account event stream, reconciliation: all through
`order_apply_remote`) book their fee from the symbol's cost model, as paper and the backtests
do: the per-order commission on the order's first fill only, per-share parts on every fill, and
one fee per broker fill however many times it is delivered. Tradier's order reports carry no
commission, so the cost model is the source.

Costs of every test here (`COSTS`): 0.005 USD commission per share, 1.00 per order, SEC fee
27.80 USD per million sold, FINRA TAF 0.000166 per share sold (cap 8.30); each part rounded up
to the cent (`CostModel.fill_fee`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.trading.helpers import make_signal, minutes
from trading.brokers.base import BrokerOrder
from trading.models import Fill, Order, Position, Trade

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)
COSTS = {
    "COST_COMMISSION_PER_SHARE_USD": D("0.005"),
    "COST_COMMISSION_PER_ORDER_USD": D("1.00"),
    "COST_SEC_FEE_PER_MILLION": D("27.80"),
    "COST_TAF_PER_SHARE_USD": D("0.000166"),
    "COST_TAF_MAX_USD": D("8.30"),
    "PAPER_COMMISSION_PER_SHARE_USD": D("0"),
    "PAPER_COMMISSION_PER_ORDER_USD": D("0"),
}


@pytest.fixture
def costs(settings):
    for name, value in COSTS.items():
        setattr(settings, name, value)


# Every test runs with the live broker in use (`fake_tradier`: the Tradier broker over the
# fake, which carries no cost model of its own), as the live processes do.


def _order(tag: str, broker_id: str, side: str, qty: int) -> Order:
    return Order.objects.create(
        tag=tag,
        broker="tradier",
        broker_order_id=broker_id,
        symbol="SPY",
        side=side,
        qty=qty,
        order_type="market",
        status="open",
        created_at=T,
    )


def _apply(order: Order, status: str, filled: int, avg: str, at: int) -> None:
    from trading.services import order_apply_remote

    remote = BrokerOrder(id=order.broker_order_id, status=status, filled_qty=filled,
                         avg_fill_price=D(avg))  # fmt: skip
    order_apply_remote(order=order, remote=remote, now=minutes(T, at))


def test_polled_fills_book_the_cost_model_fee_commission_once_per_order(costs, fake_tradier):
    buy = _order("fee-buy", "501", "buy", 100)
    _apply(buy, "filled", 100, "186.10", 1)
    sell = _order("fee-sell", "502", "sell", 100)
    _apply(sell, "partially_filled", 40, "187.00", 2)
    sell.refresh_from_db()
    _apply(sell, "filled", 100, "187.30", 3)
    fills = list(Fill.objects.order_by("ts").values_list("side", "qty", "price", "fee"))
    # buy 100 @ 186.10: 1.00 per order + 100 x 0.005 = 1.50; no SEC fee or TAF on a purchase
    # sell 40 @ 187.00 (the order's first fill): 1.00 + 40 x 0.005 = 1.20;
    #   SEC 40 x 187.00 = 7480 x 27.80 / 1e6 = 0.207944 -> 0.21; TAF 40 x 0.000166 = 0.00664
    #   -> 0.01; fee 1.42
    # sell 60 more: the broker's average 187.30 over 100 -> (18730 - 40 x 187) / 60 = 187.50;
    #   commission 60 x 0.005 = 0.30 (no second 1.00); SEC 60 x 187.50 = 11250 x 27.80 / 1e6
    #   = 0.31275 -> 0.32; TAF 60 x 0.000166 = 0.00996 -> 0.01; fee 0.63
    assert fills == [
        ("buy", 100, D("186.10"), D("1.50")),
        ("sell", 40, D("187.00"), D("1.42")),
        ("sell", 60, D("187.50"), D("0.63")),
    ]
    position = Position.objects.get(symbol="SPY")
    # flat: -18610.00 + 7480.00 + 11250.00 = 120.00, less 1.50 + 1.42 + 0.63 = 3.55 -> 116.45
    assert position.qty == 0 and position.realized_pnl == D("116.45")


def test_a_fill_delivered_twice_books_one_fill_and_one_fee(costs, fake_tradier):
    order = _order("fee-dup", "601", "sell", 50)
    stale = Order.objects.get(pk=order.pk)  # a second reader (stream vs poll) holding the row
    _apply(order, "filled", 50, "200.00", 1)
    order.refresh_from_db()
    _apply(order, "filled", 50, "200.00", 2)  # the same report again (redelivery)
    _apply(stale, "filled", 50, "200.00", 2)  # the other path, from a row read before the fill
    fills = list(Fill.objects.filter(order=order).values_list("qty", "fee"))
    # 1.00 + 50 x 0.005 = 1.25; SEC 50 x 200 = 10000 x 27.80 / 1e6 = 0.278 -> 0.28;
    # TAF 50 x 0.000166 = 0.0083 -> 0.01; fee 1.54, once
    assert fills == [(50, D("1.54"))]
    position = Position.objects.get(symbol="SPY")
    assert position.qty == -50 and position.realized_pnl == D("-1.54")


def test_a_poll_racing_the_stream_books_only_the_new_execution(costs, fake_tradier):
    """The poll read the order before the stream booked its first execution: its report of
    the whole fill adds only the rest, priced from the broker's average, without a second
    per-order commission."""
    order = _order("fee-race", "701", "sell", 100)
    stale = Order.objects.get(pk=order.pk)  # the poll's row, read before any fill
    _apply(order, "partially_filled", 40, "187.00", 1)  # the stream: 40 @ 187.00
    _apply(stale, "filled", 100, "187.30", 2)  # the poll, from its stale row
    fills = list(Fill.objects.filter(order=order).order_by("id").values_list("qty", "price", "fee"))
    # 40 @ 187.00: 1.42 (as in the first test); the rest: (100 x 187.30 - 40 x 187.00) / 60
    # = 187.50, fee 60 x 0.005 = 0.30 + SEC 0.31275 -> 0.32 + TAF 0.00996 -> 0.01 = 0.63
    assert fills == [(40, D("187.00"), D("1.42")), (60, D("187.50"), D("0.63"))]


def test_stream_and_poll_of_partial_fills_charge_the_commission_once(costs, fake_tradier):
    """Tradier's event of each execution and the poll of the same order: whichever comes first
    books the fill, the other nothing; the second execution pays no per-order commission."""
    from trading.account_events import event_apply, parse_event
    from trading.services import order_create, order_submit, order_sync

    order = order_create(symbol="SPY", side="buy", qty=10, order_type="limit", price=D("186.00"),
                         role="entry", tag="at-fee-stream", now=T,
                         broker=fake_tradier.broker)  # fmt: skip
    order = order_submit(order=order, now=T, broker=fake_tradier.broker)
    broker_id = int(order.broker_order_id)
    fake_tradier.fill(broker_id, qty=4, price="185.90")
    first = parse_event(fake_tradier.events[-1], now=T)
    assert event_apply(first) == "applied"  # the stream first
    order_sync(order=Order.objects.get(pk=order.pk), now=minutes(T, 1))  # then the poll
    assert event_apply(first) == "applied"  # and a redelivery: nothing new
    fake_tradier.fill(broker_id, price="186.00")
    order_sync(order=Order.objects.get(pk=order.pk), now=minutes(T, 2))  # the poll first
    assert event_apply(parse_event(fake_tradier.events[-1], now=T)) == "applied"
    fills = list(Fill.objects.filter(order=order).order_by("id").values_list("qty", "price", "fee"))
    # 4 @ 185.90, the order's first fill: 1.00 + 4 x 0.005 = 1.02 (a purchase: no SEC/TAF)
    # 6 @ 186.00: 6 x 0.005 = 0.03
    assert fills == [(4, D("185.90"), D("1.02")), (6, D("186.00"), D("0.03"))]


def test_a_live_trade_round_trip_books_the_fees_of_the_symbol_cost_model(
    costs, fake_tradier, config
):
    """A signal through the live pipeline (the Tradier fake), its entry and stop filled at the
    broker and read by the beat's order sync: the trade's realised P&L (what the kill switch
    and day P&L sum) is net of the fees of the symbol's cost model, its override included
    (SPY: 0.50 per order instead of 1.00; a fixed 20 shares)."""
    from risk.models import SymbolOverride
    from trading.pipeline import exits_tick_run, signal_handle

    SymbolOverride.objects.create(symbol="SPY", qty=20, commission_per_order_usd=D("0.50"))
    signal = make_signal(bar_ts=T, entry="186.08", stop="185.08", t1=None, t2=None)
    assert signal_handle(signal=signal, now=minutes(T, 1), config=config) == "submitted"
    entry = Order.objects.get(signal=signal, role="entry")
    fake_tradier.fill(int(entry.broker_order_id), price="186.10")
    exits_tick_run(now=minutes(T, 2), config=config)
    trade = Trade.objects.get(signal=signal)
    assert trade.status == "open" and trade.qty == 20
    # entry 20 @ 186.10: 0.50 + 20 x 0.005 = 0.60
    assert trade.realized_pnl == D("-0.60")
    stop = Order.objects.get(trade=trade, role="stop")
    fake_tradier.fill(int(stop.broker_order_id), price="185.10")
    exits_tick_run(now=minutes(T, 3), config=config)
    trade.refresh_from_db()
    assert trade.status == "closed"
    # exit 20 @ 185.10: 0.50 + 20 x 0.005 = 0.60; SEC 20 x 185.10 = 3702 x 27.80 / 1e6
    # = 0.1029156 -> 0.11; TAF 20 x 0.000166 = 0.00332 -> 0.01; fee 0.72
    fees = Fill.objects.filter(order__trade=trade).order_by("id").values_list("fee", flat=True)
    assert list(fees) == [D("0.60"), D("0.72")]
    # (185.10 - 186.10) x 20 = -20.00, less 0.60 + 0.72 -> -21.32
    assert trade.realized_pnl == D("-21.32")
