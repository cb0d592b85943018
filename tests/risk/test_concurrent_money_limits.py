"""Property (hypothesis, PostgreSQL, 8 decider processes): bursts of same-bar signals across
SPX/SPY and NDX/QQQ, decided at the same instant through the real decision path, never take
positions + pending entry orders past the cash, notional (per order, per symbol, gross) and
daily-loss limits, and never trade one idea twice.

Each example starts from a random legal book (open positions bought with real paper fills,
today's realised loss) and sends a burst of signals of a few setups on ONE bar, so the index
signal and its proxy's signal race each other. The invariants are worked out here from the
ledger rows, with the worst-case price of an entry in flight stated below, not read back from
the rules.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

import pytest
from django.db import connection, connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(900)]

NOW = datetime(2025, 9, 19, 15, 0, tzinfo=UTC)  # 11:00 ET, a regular Friday
BAR_TS = NOW - timedelta(minutes=1)
DECIDERS = 8
EXECUTES_IN = {"SPX": "SPY", "SPY": "SPY", "NDX": "QQQ", "QQQ": "QQQ"}
PRICES = {"SPY": Decimal("450.00"), "QQQ": Decimal("380.00")}
SETUPS = ("ORB", "VWAP_RECLAIM", "EMA_CROSS")
CASH = Decimal("100000")
LIMITS = {
    "order_pct": Decimal("0.25"),
    "symbol_pct": Decimal("0.5"),
    "gross_pct": Decimal("1.0"),
    "daily_loss": Decimal("300"),
    "risk": Decimal("100"),
}
SPREAD, SLIPPAGE = Decimal("0.01"), Decimal("0.005")
CENT = Decimal("0.01")


def _config():
    from risk.config import RiskConfig
    from risk.costs import CostModel

    return RiskConfig.from_settings().with_(
        risk_per_trade_usd=LIMITS["risk"],
        max_concurrent=20,  # the money limits, not the counts, must bind
        max_open_orders=40,
        max_positions_per_symbol=0,
        max_order_notional_usd=Decimal("0"),
        max_order_notional_pct=LIMITS["order_pct"],
        max_symbol_exposure_pct=LIMITS["symbol_pct"],
        max_gross_exposure_pct=LIMITS["gross_pct"],
        max_daily_loss_usd=LIMITS["daily_loss"],
        max_daily_loss_r=Decimal("0"),
        min_cash_usd=Decimal("0"),
        duplicate_exposure=True,
        min_t1_cost_multiple=Decimal("0"),
        stop_pct=None,
        tp_pct=None,
        costs=CostModel(spread_usd=SPREAD, slippage_usd=SLIPPAGE),
    )


def _decider(barrier, inbox, outbox) -> None:
    """One worker process with its own database connection: decide each burst's signals."""
    import trading.brokers as brokers
    from strategies.models import Signal
    from trading.pipeline import signal_handle

    brokers._default = None
    config = _config()
    while True:
        barrier.wait()
        ids = inbox.get()
        if ids is None:
            return
        out = []
        for pk in ids:
            try:
                out.append(signal_handle(signal=Signal.objects.get(pk=pk), now=NOW, config=config))
            except Exception as exc:  # an error is a finding, reported by the parent
                out.append(f"error:{type(exc).__name__}:{exc}"[:200])
        outbox.put(out)
        barrier.wait()


@pytest.fixture
def deciders(settings):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent deciders need PostgreSQL")
    settings.PAPER_STARTING_CASH_USD = CASH
    connections.close_all()
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(DECIDERS + 1)
    inboxes = [ctx.Queue() for _ in range(DECIDERS)]
    outbox = ctx.Queue()
    procs = [
        ctx.Process(target=_decider, args=(barrier, inboxes[i], outbox), daemon=True)
        for i in range(DECIDERS)
    ]
    for p in procs:
        p.start()

    def run(ids: list[int]) -> list[str]:
        for i, box in enumerate(inboxes):
            box.put(ids[i::DECIDERS])
        barrier.wait(timeout=120)
        outcomes = [o for _ in procs for o in outbox.get(timeout=120)]
        barrier.wait(timeout=120)
        return outcomes

    yield run
    for box in inboxes:
        box.put(None)
    barrier.wait(timeout=60)
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()


def _book_reset(holdings: dict[str, int], realised_loss: int) -> None:
    """Empty ledger, then open positions bought with paper fills (cash pays for them) and a
    trade closed today at `realised_loss`."""
    from django.db import transaction

    from risk.models import TradingState
    from strategies.models import Signal
    from trading.models import Fill, Order, OrderEvent, Position, Trade

    with transaction.atomic():
        for model in (OrderEvent, Fill, Order, Trade, Position, Signal):
            model.objects.all().delete()
        TradingState.objects.update_or_create(account="default", defaults={"state": "ACTIVE"})
        for n, (symbol, qty) in enumerate(holdings.items()):
            if qty <= 0:
                continue
            price = PRICES[symbol]
            trade = Trade.objects.create(
                setup="HOD_FAIL",
                symbol=symbol,
                execution_symbol=symbol,
                qty=qty,
                remaining_qty=qty,
                entry_price=price,
                stop_price=price - Decimal("0.50"),
                initial_stop_price=price - Decimal("0.50"),
                status="open",
                opened_at=NOW - timedelta(minutes=30),
                created_at=NOW - timedelta(minutes=30),
            )
            entry = Order.objects.create(
                tag=f"book-{n}-entry",
                symbol=symbol,
                side="buy",
                qty=qty,
                filled_qty=qty,
                order_type="market",
                role="entry",
                status="filled",
                trade=trade,
                broker="paper",
                created_at=NOW - timedelta(minutes=30),
            )
            Fill.objects.create(
                order=entry,
                broker_fill_id=f"book-{n}",
                symbol=symbol,
                side="buy",
                qty=qty,
                price=price,
                ts=NOW - timedelta(minutes=29),
            )
            Order.objects.create(
                tag=f"book-{n}-stop",
                symbol=symbol,
                side="sell",
                qty=qty,
                order_type="stop",
                stop_price=trade.stop_price,
                role="stop",
                status="open",
                trade=trade,
                broker="paper",
                broker_order_id=f"Pbook{n}",
                created_at=NOW - timedelta(minutes=29),
            )
            Position.objects.create(symbol=symbol, qty=qty, avg_price=price, last_price=price)
        if realised_loss:
            Trade.objects.create(
                setup="HOD_FAIL",
                symbol="SPY",
                execution_symbol="SPY",
                qty=1,
                remaining_qty=0,
                entry_price=Decimal("450"),
                stop_price=Decimal("449"),
                initial_stop_price=Decimal("449"),
                status="closed",
                realized_pnl=-Decimal(realised_loss),
                opened_at=NOW - timedelta(hours=2),
                closed_at=NOW - timedelta(hours=1),
                created_at=NOW - timedelta(hours=2),
            )


def _signals_create(burst: list[tuple[str, str, int]]) -> list[int]:
    from strategies.models import Signal

    rows = []
    for symbol, setup, stop_cents in burst:
        exec_symbol = EXECUTES_IN[symbol]
        price = PRICES[exec_symbol]
        stop = price - Decimal(stop_cents) * CENT
        rows.append(
            Signal(
                setup=setup,
                symbol=symbol,
                execution_symbol=exec_symbol,
                bar_ts=BAR_TS,  # the same bar for every signal of the burst
                entry_price=price,
                stop_price=stop,
                target_one=price + Decimal("2"),
                target_two=price + Decimal("4"),
                features={"exec_atr": 0.5},
                outcome="generated",
            )
        )
    return [s.pk for s in Signal.objects.bulk_create(rows)]


def _worst_entry_price(order) -> Decimal:
    """What an entry in flight may still pay per share: a market order the signal's price +
    half the spread + the slippage, rounded up to the cent; a pegged limit the larger of its
    limit and that (it goes to market after ENTRY_LIMIT_TIMEOUT_SEC). No commission here, and
    buys pay no regulatory fee, so no fee is added."""
    ref = order.signal.entry_price
    market = ((ref + SPREAD / 2 + SLIPPAGE) / CENT).to_integral_value(ROUND_CEILING) * CENT
    return market if order.price is None else max(order.price, market)


def _stopout(qty: int, entry: Decimal, stop: Decimal) -> Decimal:
    exit_price = stop - SPREAD / 2 - SLIPPAGE
    return qty * (entry - exit_price)


def _breaches(realised_loss: int) -> dict[str, Decimal | int]:
    """Every limit, recomputed from the rows: positive = breached by that much."""
    from trading.models import Fill, Order, Position, Trade

    positions = {p.symbol: p.avg_price * p.qty for p in Position.objects.exclude(qty=0)}
    paid = sum((f.price * f.qty for f in Fill.objects.filter(side="buy")), Decimal("0"))
    equity = CASH - paid + sum(positions.values(), Decimal("0"))
    pending: dict[str, Decimal] = {}
    order_excess = Decimal("0")
    entries = Order.objects.filter(
        role="entry", status__in=("new", "submitted", "open", "partially_filled")
    ).select_related("signal")
    for order in entries:
        amount = _worst_entry_price(order) * (order.qty - order.filled_qty)
        pending[order.symbol] = pending.get(order.symbol, Decimal("0")) + amount
        order_excess = max(order_excess, amount - LIMITS["order_pct"] * equity)
    cash_left = CASH - paid - sum(pending.values(), Decimal("0"))
    symbols = set(positions) | set(pending)
    symbol_excess = max(
        (
            positions.get(s, Decimal("0"))
            + pending.get(s, Decimal("0"))
            - LIMITS["symbol_pct"] * equity
            for s in symbols
        ),
        default=Decimal("0"),
    )
    gross = sum(positions.values(), Decimal("0")) + sum(pending.values(), Decimal("0"))
    live = list(Trade.objects.filter(status__in=("pending", "open")).select_related("signal"))
    at_risk = Decimal("0")
    for trade in live:
        if trade.status == "open":
            at_risk += _stopout(trade.remaining_qty, trade.entry_price, trade.stop_price)
        else:
            entry = Order.objects.filter(trade=trade, role="entry").first()
            at_risk += _stopout(trade.qty, _worst_entry_price(entry), trade.stop_price)
    ideas = [(t.setup, t.execution_symbol) for t in live if t.signal_id]
    return {
        "cash": max(Decimal("0"), -cash_left),
        "order_notional": max(Decimal("0"), order_excess),
        "symbol_exposure": max(Decimal("0"), symbol_excess),
        "gross_exposure": max(Decimal("0"), gross - LIMITS["gross_pct"] * equity),
        # 1% allowance for the fees the rule counts and this sum leaves out
        "daily_loss": max(
            Decimal("0"), realised_loss + at_risk - LIMITS["daily_loss"] * Decimal("1.01")
        ),
        "duplicate_ideas": len(ideas) - len(set(ideas)),
    }


bursts = st.lists(
    st.tuples(
        st.sampled_from(sorted(EXECUTES_IN)),
        st.sampled_from(SETUPS),
        st.integers(min_value=5, max_value=300),  # stop distance in cents
    ),
    min_size=DECIDERS,
    max_size=len(EXECUTES_IN) * len(SETUPS),
    unique_by=lambda s: (s[0], s[1]),  # one signal per symbol, setup and bar (as stored)
)


@settings(
    max_examples=int(os.environ.get("MONEY_PROPERTY_EXAMPLES", "4")),
    deadline=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: each example costs 8 processes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    burst=bursts,
    holdings=st.fixed_dictionaries(
        {"SPY": st.sampled_from([0, 20, 60]), "QQQ": st.sampled_from([0, 40])}
    ),
    realised_loss=st.sampled_from([0, 150, 280]),
)
def test_positions_plus_pending_never_exceed_the_money_limits(
    deciders, burst, holdings, realised_loss
):
    _book_reset(holdings, realised_loss)
    ids = _signals_create(burst)
    connections.close_all()
    outcomes = deciders(ids)
    assert not [o for o in outcomes if o.startswith("error")], outcomes
    assert len(outcomes) == len(ids)
    breaches = _breaches(realised_loss)
    assert all(v == 0 for v in breaches.values()), breaches
