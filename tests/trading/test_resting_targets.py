"""Resting targets (RESTING_TARGETS=1): once an entry fills, OCO pairs at the broker (stop + T1
limit for PARTIAL_EXIT_PCT of the shares, stop + T2 limit for the rest). The same price path
through the paper book (ORM ledger, paper broker, bar fills), a backtest's memory ledger
(`bar_step`) and the live path against the stateful fake Tradier (fills from its tape, applied
through the account-event apply path): T1 fills the partial and the stop goes to break-even by
a modify of the stop leg, T2 fills the rest; a stop-out ends each pair; a partly filled leg is
re-protected.

One trade in every test: signal entry 100.00, stop 99.00, T1 101.00, T2 102.00, risk $100 per
trade -> 100 shares ($1.00 of risk a share). The entry fills at 100.10, so the levels move by
+0.10 (`levels_reanchor`): stop 99.10, T1 101.10, T2 102.10. PARTIAL_EXIT_PCT 0.5: 50 + 50.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from risk.costs import CostModel
from tests.trading.helpers import bar, make_signal, minutes
from trading.brokers import broker_override
from trading.brokers.paper import PaperBroker
from trading.core.fills import BarPrices, FillCosts
from trading.models import Order, Trade

pytestmark = pytest.mark.django_db
D = Decimal
T = datetime(2025, 9, 17, 14, 0, tzinfo=UTC)  # 10:00 New York, the signal bar's start
WORKING = ("new", "submitted", "open", "partially_filled")
# no spread or slippage (a market order fills at the open), the regulatory fees of a sale at
# the settings' defaults: SEC 27.80 per million of the proceeds, TAF 0.000166 a share (cap
# 8.30), each rounded up to the cent per fill (`CostModel.regulatory_fees`)
FEES = CostModel(
    sec_fee_per_million=D("27.80"), taf_per_share_usd=D("0.000166"), taf_max_usd=D("8.30")
)
# bars after the signal bar (open, high, low, close)
ENTRY_BAR = ("100.10", "100.20", "100.00", "100.10")  # the entry fills at the open 100.10
T1_BAR = ("100.50", "101.20", "100.40", "101.00")  # T1 101.10 touched, not T2, no stop
T2_BAR = ("101.50", "102.30", "101.40", "102.00")  # T2 102.10 touched; BE stop 100.10 not
STOP_BAR = ("99.50", "99.60", "99.00", "99.20")  # both stops 99.10 hit, no target
# T1 + T2 path, by hand: (101.10 - 100.10) x 50 + (102.10 - 100.10) x 50 = 50 + 100 = 150.00
# fees: T1 sale 50 x 101.10 = 5055.00 -> SEC 0.140529 -> 0.15, TAF 0.0083 -> 0.01: 0.16
#       T2 sale 50 x 102.10 = 5105.00 -> SEC 0.141919 -> 0.15, TAF 0.0083 -> 0.01: 0.16
TARGETS_GROSS, TARGETS_FEES = D("150.00"), D("0.32")
# stop-out path: (99.10 - 100.10) x 100 = -100.00; each 50-share sale 50 x 99.10 = 4955.00
# -> SEC 0.137749 -> 0.14, TAF 0.01: 0.15 a pair
STOP_GROSS, STOP_FEES = D("-100.00"), D("0.30")


@pytest.fixture
def resting(settings):
    settings.RESTING_TARGETS = True
    settings.PARTIAL_EXIT_PCT = 0.5


@pytest.fixture
def paper_fees():
    broker = PaperBroker(costs=FillCosts(model=FEES))
    broker_override(broker)
    yield broker
    broker_override(None)


def working(trade, *roles):
    return Order.objects.filter(trade=trade, role__in=roles, status__in=WORKING).order_by("id")


# --- paper (ORM ledger + paper broker) -----------------------------------------------------
def paper_step(prices, n, config):
    from trading.exits import exits_manage
    from trading.pipeline import paper_bar_process

    b = bar(minutes(T, n), *prices)
    paper_bar_process(bar=b, config=config)
    exits_manage(now=b.ts + timedelta(minutes=1), symbol=b.symbol, bar=b, config=config)


def paper_open(config):
    from trading.pipeline import signal_handle

    signal = make_signal(bar_ts=T)
    assert signal_handle(signal=signal, now=minutes(T, 1), config=config) == "dry_run"
    paper_step(ENTRY_BAR, 1, config)
    return Trade.objects.get(signal=signal)


def test_paper_entry_fill_rests_two_oco_pairs_one_stop_per_share(resting, paper_fees, config):
    trade = paper_open(config)
    assert (trade.status, trade.qty, trade.remaining_qty) == ("open", 100, 100)
    assert (trade.entry_price, trade.stop_price) == (D("100.10"), D("99.10"))
    heads = list(working(trade, "stop"))
    assert [(h.order_class, h.qty, h.stop_price) for h in heads] == [
        ("oco", 50, D("99.10")),
        ("oco", 50, D("99.10")),
    ]
    limits = [(o.role, o.qty, o.price, o.parent_id) for o in working(trade, "target_one")]
    limits += [(o.role, o.qty, o.price, o.parent_id) for o in working(trade, "target_two")]
    assert limits == [
        ("target_one", 50, D("101.10"), heads[0].pk),
        ("target_two", 50, D("102.10"), heads[1].pk),
    ]
    # the form Tradier would receive: one oco order, the stop and the limit as its legs
    sent = heads[0].request_payload
    assert (sent["class"], sent["type[0]"], sent["type[1]"]) == ("oco", "stop", "limit")
    assert (sent["stop[0]"], sent["price[1]"], sent["quantity[1]"]) == ("99.10", "101.10", "50")


def test_paper_t1_fills_the_partial_stop_to_break_even_then_t2_the_rest(
    resting, paper_fees, config
):
    trade = paper_open(config)
    paper_step(T1_BAR, 2, config)
    trade.refresh_from_db()
    assert (trade.remaining_qty, trade.partial_done) == (50, True)
    assert trade.stop_price == D("100.10")  # break-even: max(99.10, entry 100.10)
    t1_limit = Order.objects.get(trade=trade, role="target_one")
    assert (t1_limit.status, t1_limit.filled_qty, t1_limit.avg_fill_price) == (
        "filled",
        50,
        D("101.10"),
    )
    assert t1_limit.parent.status == "cancelled"  # its sibling stop
    (stop,) = working(trade, "stop")
    assert (stop.qty, stop.stop_price) == (50, D("100.10"))  # the T2 pair's stop, modified
    assert "-> 100.10" in " ".join(stop.events.values_list("cause", flat=True))
    paper_step(T2_BAR, 3, config)
    trade.refresh_from_db()
    assert (trade.status, trade.exit_reason, trade.remaining_qty) == ("closed", "target_two", 0)
    assert not working(trade, "stop", "target_one", "target_two", "exit", "flatten").exists()
    assert trade.realized_pnl == TARGETS_GROSS - TARGETS_FEES  # 149.68


def test_paper_stop_out_cancels_each_sibling_limit(resting, paper_fees, config):
    trade = paper_open(config)
    paper_step(STOP_BAR, 2, config)
    trade.refresh_from_db()
    assert (trade.status, trade.exit_reason) == ("closed", "stop")
    limits = Order.objects.filter(trade=trade, role__in=("target_one", "target_two"))
    assert sorted(limits.values_list("status", flat=True)) == ["cancelled", "cancelled"]
    assert trade.realized_pnl == STOP_GROSS - STOP_FEES  # -100.30


def test_paper_a_clock_exit_cancels_the_pairs_then_sells_at_market(resting, paper_fees, config):
    from trading.core import lifecycle
    from trading.orm_ledger import OrmLedger

    trade = paper_open(config)
    order = lifecycle.exit(OrmLedger(), trade, qty=None, reason="timeout", now=minutes(T, 2))
    assert (order.role, order.order_type, order.qty) == ("exit", "market", 100)
    legs = Order.objects.filter(trade=trade, role__in=("stop", "target_one", "target_two"))
    assert set(legs.values_list("status", flat=True)) == {"cancelled"}


def test_resting_off_keeps_one_plain_stop(settings, paper_fees, config):
    settings.RESTING_TARGETS = False
    trade = paper_open(config)
    (stop,) = working(trade, "stop")
    assert (stop.order_class, stop.qty) == ("equity", 100)
    assert not working(trade, "target_one", "target_two").exists()


# --- backtest (memory ledger) --------------------------------------------------------------
def memory_run(config, path):
    from analytics.backtest.memory_ledger import MemoryLedger
    from risk.config import SymbolParams
    from trading.core.step import StepContext, bar_step
    from trading.core.types import Candidate

    risk = config.with_(resting_targets=True, partial_exit_pct=D("0.5"))
    costs = FillCosts(model=FEES)
    ledger = MemoryLedger(
        risk=risk, costs=costs, starting_cash=D("100000"), params={"SPY": SymbolParams("SPY")}
    )
    ctx = StepContext(
        config=risk, params=lambda s: SymbolParams(s), flat_at=lambda now: None, costs=costs
    )
    candidate = Candidate(
        "EMA_CROSS", "SPY", "SPY", T, D("100.00"), D("99.00"), D("101.00"), D("102.00")
    )
    bars = [("100.00", "100.05", "99.95", "100.00"), *path]
    for n, prices in enumerate(bars):
        fired = [candidate] if n == 0 else []
        bar_step(
            ledger, symbol="SPY", ts=minutes(T, n), bar=BarPrices(*map(D, prices)),
            strategy=lambda fired=fired: fired, ctx=ctx,
        )  # fmt: skip
    (trade,) = ledger.trades
    return ledger, trade


def test_backtest_same_path_same_fills_and_pnl(config):
    ledger, trade = memory_run(config, [ENTRY_BAR, T1_BAR, T2_BAR])
    assert (trade.status, trade.exit_reason, trade.qty) == ("closed", "target_two", 100)
    assert trade.entry_price == D("100.10")
    legs = [(leg.qty, D(str(leg.price))) for leg in trade.record.legs]
    assert legs == [(50, D("101.10")), (50, D("102.10"))]
    assert trade.fees == TARGETS_FEES
    assert trade.realized_pnl == TARGETS_GROSS - TARGETS_FEES
    assert not [o for o in trade.orders if o.is_working]


def test_backtest_stop_out_same_as_paper(config):
    ledger, trade = memory_run(config, [ENTRY_BAR, STOP_BAR])
    assert (trade.status, trade.exit_reason) == ("closed", "stop")
    assert trade.realized_pnl == STOP_GROSS - STOP_FEES
    cancelled = [o.role for o in trade.orders if o.status == "cancelled"]
    assert sorted(cancelled) == ["target_one", "target_two"]


# --- live (fake Tradier: resting orders filled by its tape, events applied) ---------------
def pump(fake, seen: int) -> int:
    """Apply every event the fake emitted since `seen` (applying may place orders, which
    emit more) through the account stream's apply path; returns the new high-water mark."""
    from trading.account_events import event_apply, parse_event

    while seen < len(fake.events):
        event = parse_event(fake.events[seen], now=T)
        seen += 1
        if event is not None:
            event_apply(event)
    return seen


def live_open(fake, config):
    from trading.pipeline import signal_handle

    fake.cash_start = 100000.0  # an account whose cash follows its fills: never the cap
    fake.quote("SPY", "99.99", "100.01")
    signal = make_signal(bar_ts=T)
    assert signal_handle(signal=signal, now=minutes(T, 1), config=config) == "submitted"
    entry = Order.objects.get(signal=signal, role="entry")
    fake.fill(int(entry.broker_order_id), price="100.10")
    seen = pump(fake, 0)
    return Trade.objects.get(signal=signal), seen


def fake_pairs(fake):
    """The fake's OCO orders: [(status, [(type, status, quantity, exec, stop, price)])]."""
    out = []
    for order in fake.orders.values():
        if order.get("class") != "oco":
            continue
        legs = [
            (leg["type"], leg["status"], leg["quantity"], leg["exec_quantity"],
             leg["stop_price"], leg["price"])
            for leg in order["leg"]
        ]  # fmt: skip
        out.append((order["status"], legs))
    return out


def test_live_t1_t2_through_the_fake_same_path_as_paper(resting, fake_tradier, config):
    fake = fake_tradier
    trade, seen = live_open(fake, config)
    assert (trade.status, trade.remaining_qty, trade.entry_price) == ("open", 100, D("100.10"))
    assert fake_pairs(fake) == [
        ("open", [("stop", "open", 50, 0, 99.10, None), ("limit", "open", 50, 0, None, 101.10)]),
        ("open", [("stop", "open", 50, 0, 99.10, None), ("limit", "open", 50, 0, None, 102.10)]),
    ]
    fake.tick("SPY", bid="101.10", ask="101.12")  # T1 touched at the bid
    seen = pump(fake, seen)
    trade.refresh_from_db()
    assert (trade.remaining_qty, trade.partial_done, trade.stop_price) == (50, True, D("100.10"))
    first, second = fake_pairs(fake)
    assert first[1][0][1] == "canceled" and first[1][1][1:4] == ("filled", 50, 50)
    # the T2 pair's stop leg was modified in place (PUT on the leg id): never without a stop
    assert second == (
        "open",
        [("stop", "open", 50, 0, 100.10, None), ("limit", "open", 50, 0, None, 102.10)],
    )
    fake.tick("SPY", bid="102.10", ask="102.12")
    pump(fake, seen)
    trade.refresh_from_db()
    assert (trade.status, trade.exit_reason, trade.remaining_qty) == ("closed", "target_two", 0)
    # live fills book the cost model's fees as paper does (Tradier's order reports carry no
    # commission): the same net P&L as the paper path, 150.00 - 0.32 = 149.68
    assert trade.realized_pnl == TARGETS_GROSS - TARGETS_FEES
    assert fake.positions["SPY"]["quantity"] == 0
    assert not working(trade, "stop", "target_one", "target_two").exists()


def test_live_stop_out_cancels_the_sibling_limits(resting, fake_tradier, config):
    fake = fake_tradier
    trade, seen = live_open(fake, config)
    fake.tick("SPY", bid="99.10", ask="99.12")
    pump(fake, seen)
    trade.refresh_from_db()
    # net of the same fees as the paper stop-out: -100.00 - 0.30
    assert (trade.status, trade.exit_reason, trade.realized_pnl) == (
        "closed",
        "stop",
        STOP_GROSS - STOP_FEES,
    )
    for status, legs in fake_pairs(fake):
        assert (status, [leg[1] for leg in legs]) == ("filled", ["filled", "canceled"])
    limits = Order.objects.filter(trade=trade, role__in=("target_one", "target_two"))
    assert set(limits.values_list("status", flat=True)) == {"cancelled"}


def test_live_partial_fill_of_a_leg_reprotects_the_rest(resting, fake_tradier, config):
    fake = fake_tradier
    trade, seen = live_open(fake, config)
    t1_id = next(o["id"] for o in fake.orders.values() if o.get("class") == "oco")
    fake.quote("SPY", "101.08", "101.10")  # the touch moves up to T1 (no fill yet) ...
    fake.fill_leg(t1_id, 1, price="101.10", qty=20)  # ... and 20 of the T1 limit's 50 fill
    pump(fake, seen)
    trade.refresh_from_db()
    assert (trade.remaining_qty, trade.partial_done, trade.stop_price) == (80, True, D("100.10"))
    pairs = fake_pairs(fake)
    # the T1 pair (its stop still 50 at the broker for 30 held) was cancelled; the T2 pair
    # kept with its stop at break-even; a new pair covers the 30 left, at T2
    assert pairs[0][1][0][1] == "canceled" and pairs[0][1][1][1:4] == ("canceled", 50, 20)
    assert pairs[1][1] == [
        ("stop", "open", 50, 0, 100.10, None),
        ("limit", "open", 50, 0, None, 102.10),
    ]
    assert pairs[2][1] == [
        ("stop", "open", 30, 0, 100.10, None),
        ("limit", "open", 30, 0, None, 102.10),
    ]
    open_stops = [leg for _, legs in pairs for leg in legs if leg[:2] == ("stop", "open")]
    working_stops = sum(leg[2] - leg[3] for leg in open_stops)
    assert working_stops == fake.positions["SPY"]["quantity"] == 80


def test_fault_fake_modifies_an_oco_leg_by_its_id():
    """The fault scenarios' fake Tradier takes the stop move of a resting pair as live does."""
    from tests.faults.fake_tradier import FakeTradierState

    state = FakeTradierState()
    form = {
        "class": "oco", "duration": "day", "tag": "at-pair-1",
        "symbol[0]": "SPY", "side[0]": "sell", "quantity[0]": "50", "type[0]": "stop",
        "stop[0]": "99.10",
        "symbol[1]": "SPY", "side[1]": "sell", "quantity[1]": "50", "type[1]": "limit",
        "price[1]": "102.10",
    }  # fmt: skip
    status, body = state.place(form)
    assert status == 200
    pair = state.orders[body["order"]["id"]]
    stop_leg = pair["leg"][0]
    assert state.modify(stop_leg["id"], {"stop": "100.10"})[0] == 200
    assert (stop_leg["stop_price"], pair["leg"][1]["price"]) == (100.10, 102.10)
    assert state.modify(10**9, {"stop": "1.00"})[0] == 400  # unknown id


def test_a_broken_pair_whose_cancel_is_unconfirmed_never_costs_a_sound_pair_its_stop(config):
    """Live race (found by bench_protection --resting): T1's limit filled, the broker has not
    confirmed the cancel of its stop leg yet. The T2 pair must be kept (its stop moved to
    break-even), not cancelled as surplus."""
    from trading.core import resting
    from trading.core.types import OrderState

    ledger, trade = memory_run(config, [ENTRY_BAR])
    t1_head, t1_limit, t2_head, t2_limit = [o for o in trade.orders if o.role != "entry"]
    assert (t1_limit.role, t2_limit.role) == ("target_one", "target_two")
    t1_limit.filled_qty, t1_limit.status = 50, OrderState.FILLED  # as the broker reported
    trade.remaining_qty, trade.partial_done = 50, True
    refuse = lambda order, **kw: False  # noqa: E731 - the broker has not confirmed yet
    ledger.cancel = refuse
    resting.protect_resting(ledger, trade, now=minutes(T, 3))
    assert t2_head.is_working and t2_limit.is_working
    assert t2_head.stop_price == D("100.10")  # break-even, by a modify
    assert t1_head.is_working  # still there until the broker's report arrives
    assert len(trade.orders) == 5  # nothing new placed over shares still covered


def test_reconciliation_leaves_pairs_placed_after_its_listing_alone(
    resting, fake_tradier, config, monkeypatch
):
    """Found by bench_protection --resting: the stream's reconnect reconciled with a listing
    read just before the pairs were POSTed; their limit legs were cancelled as "never reached
    the broker" (or expired as "vanished": a leg's id is unknown to GET) while they rested."""
    from trading.reconciliation import reconcile_run

    fake = fake_tradier
    trade, _ = live_open(fake, config)
    listing = fake.broker.orders
    monkeypatch.setattr(
        fake.broker, "orders", lambda: [o for o in listing() if o.order_class != "oco"]
    )
    reconcile_run(now=minutes(T, 2), broker=fake.broker)
    legs = Order.objects.filter(trade=trade).exclude(role="entry")
    assert sorted(legs.values_list("role", "status")) == [
        ("stop", "open"),
        ("stop", "open"),
        ("target_one", "open"),
        ("target_two", "open"),
    ]
    assert [status for status, _ in fake_pairs(fake)] == ["open", "open"]
