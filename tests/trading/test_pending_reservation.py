"""What working entries reserve, read from the database as the decision lock reads it: each at
its worst fill (a pegged limit becomes a market order after ENTRY_LIMIT_TIMEOUT_SEC, so the
larger of its limit and the market fill of the signal's price) plus the buy's fees, priced with
the symbol's cost model (risk.exposure through trading.core.lifecycle.exposure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from risk.costs import CostModel
from tests.trading.helpers import make_signal
from trading.brokers.paper import PaperBroker
from trading.core import lifecycle
from trading.core.fills import FillCosts
from trading.models import Order
from trading.orm_ledger import OrmLedger

D = Decimal
NOON = datetime(2025, 9, 17, 16, 0, tzinfo=UTC)  # Wed 12:00 EDT
# a market buy fills 2 bps above the mid (half the 2 bps spread + 1 bp slippage); $1 an order
COSTS = CostModel(slippage_bps=D("1"), spread_bps=D("2"), commission_per_order_usd=D("1"))


def _entry(signal, *, tag, qty, status, order_type="limit", price=None, filled=0):
    return Order.objects.create(
        tag=tag,
        signal=signal,
        role="entry",
        symbol=signal.execution_symbol,
        side="buy",
        qty=qty,
        filled_qty=filled,
        order_type=order_type,
        price=None if price is None else D(price),
        status=status,
        created_at=NOON,
    )


@pytest.mark.django_db
def test_working_entries_reserve_their_worst_fill_and_fees_per_symbol():
    spy = make_signal(bar_ts=NOON, entry="100.00", stop="99.00")
    spy_2 = make_signal(bar_ts=NOON, entry="100.00", stop="99.00", setup="ORB")
    qqq = make_signal(bar_ts=NOON, entry="50.00", stop="49.50", symbol="QQQ")
    done = make_signal(bar_ts=NOON, entry="100.00", stop="99.00", setup="VWAP_BOUNCE")
    # A: limit 99.98 below the signal, 4 of 14 filled. Worst: max(99.98, 100.00 x 1.0002 =
    #    100.02) = 100.02; 10 x 100.02 + $1 = 1,001.20
    _entry(spy, tag="a", qty=14, filled=4, status="partially_filled", price="99.98")
    # B: limit 100.05 above the market fallback: 15 x 100.05 + $1 = 1,501.75
    _entry(spy_2, tag="b", qty=15, status="open", price="100.05")
    # C: QQQ market: 3 x (50.00 x 1.0002 = 50.01) + $1 = 151.03
    _entry(qqq, tag="c", qty=3, status="submitted", order_type="market")
    # D: filled: it reserves nothing (its cash is spent, the position counts instead)
    _entry(done, tag="d", qty=20, filled=20, status="filled", price="100.00")

    ledger = OrmLedger(PaperBroker(FillCosts(model=COSTS)))
    exposure = lifecycle.exposure(ledger, now=NOON, with_day_pnl=False)

    assert exposure.pending_notional_by_symbol == {"SPY": D("2502.95"), "QQQ": D("151.03")}
    assert exposure.pending_cash == D("2653.98")  # 1,001.20 + 1,501.75 + 151.03
