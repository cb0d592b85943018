"""The paper book's clock rules and its own loss limit run whatever the account is doing: the
replay's clock tick steps the paper book while the account is flat, and the paper book's kill
switch flattens it while the account is HALTED (its state is the account's, but the paper book's
loss limit is its own)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal

import pytest

from strategies.models import Book
from tests.trading.test_paper_book import _session_start, paper_setup  # noqa: F401 (fixture)


def _paper_entry(config):
    """ALWAYS_PAPER fires on the 09:30 bar: a market entry on the paper book, the account flat.
    Only that bar is stored, so the entry cannot fill on a later bar."""
    from marketdata.services import bars_upsert
    from trading.pipeline import process_bar_close

    config = replace(config, entry_spread_bps=Decimal("0"))  # a market entry
    (first,) = _session_start(1)
    bars_upsert(bars=[first])
    (signal,) = process_bar_close(bar=first, config=config)
    signal.refresh_from_db()
    assert (signal.book, signal.outcome) == (Book.PAPER, "dry_run")
    return first, signal, config


@pytest.mark.django_db(transaction=True)
def test_clock_tick_steps_the_paper_book_while_the_account_is_flat(
    paper_setup,  # noqa: F811
    fake_tradier,
    config,
):
    from trading.models import Order, Trade
    from trading.pipeline import clock_tick

    first, signal, config = _paper_entry(config)
    assert not Order.objects.filter(book=Book.ACCOUNT).exists()  # the account holds nothing
    # the entry was placed at the bar's close, 14:31Z; at 14:34 it has waited more than the two
    # minutes after which a paper market order whose symbol printed no bar fills at the last
    # close, worsened for the buyer by half the 1-cent spread and the half-cent slippage of the
    # default cost model, rounded up to the cent: close + 0.005 + 0.005, ceiling
    clock_tick(now=first.ts + timedelta(minutes=4), config=config)
    expected = (Decimal(str(first.close)) + Decimal("0.01")).quantize(
        Decimal("0.01"), rounding=ROUND_CEILING
    )
    trade = Trade.objects.get(signal=signal)
    assert (trade.book, trade.status, trade.entry_price) == (Book.PAPER, "open", expected)
    assert fake_tradier.submissions == {}


@pytest.mark.django_db(transaction=True)
def test_paper_book_kill_switch_flattens_it_while_the_account_is_halted(
    paper_setup,  # noqa: F811
    fake_tradier,
    config,
):
    from risk.selectors import trading_state_get
    from risk.services import trading_state_set
    from trading.core import lifecycle
    from trading.models import Order, Trade
    from trading.paper_book import paper_book_broker
    from trading.pipeline import _ledger, clock_tick

    first, signal, config = _paper_entry(config)
    now = first.ts + timedelta(minutes=4)
    clock_tick(now=now, config=config)  # the paper entry fills (see the test above)
    trade = Trade.objects.get(signal=signal)
    assert trade.status == "open" and trade.remaining_qty > 0
    trading_state_set(state="HALTED", reason="operator", actor="test")

    # marked 1.00 below its entry the paper trade loses 1.00 x qty >= 1.00 (qty >= 1) before
    # fees, beyond a 0.50 daily limit: the paper book's kill switch fires and flattens it
    book = _ledger(paper_book_broker(), book=Book.PAPER)
    book.mark("SPY", trade.entry_price - Decimal("1.00"))
    limit = replace(config, max_daily_loss_usd=Decimal("0.50"))
    assert lifecycle.kill_switch(book, now=now, config=limit) is True
    flatten = Order.objects.filter(trade=trade, role="flatten")
    assert list(flatten.values_list("book", "side", "qty")) == [
        (Book.PAPER, "sell", trade.remaining_qty)
    ]
    assert trading_state_get().state == "HALTED"  # the account's state is not the book's
    assert fake_tradier.submissions == {}
    # three minutes later the flatten (a market order, no bar since) has filled at the last
    # close: the book holds nothing, so its kill switch has nothing more to do
    clock_tick(now=now + timedelta(minutes=3), config=limit)
    trade.refresh_from_db()
    assert (trade.status, trade.remaining_qty) == ("closed", 0)
    assert lifecycle.kill_switch(book, now=now + timedelta(minutes=3), config=limit) is False
