"""A setup in paper mode while the account trades live (DRY_RUN=0) trades on the paper book:
its signal is decided by the same lifecycle over the paper book's own ledger and paper broker,
sends nothing to Tradier (here the fake), never counts against the account's exposure and is
never reconciled against Tradier; a setup approved for live trading sends its entry to Tradier.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_CEILING, Decimal

import pytest

from strategies.models import Book, Signal
from tests.strategies.test_real_sessions import load_bars

LIVE = """\
name: ALWAYS_LIVE
condition: close > 0
stop: close - 0.5
target_one: close + 0.5
target_two: close + 1
cooldown_sec: 86400
"""
PAPER = LIVE.replace("ALWAYS_LIVE", "ALWAYS_PAPER")


def _session_start(n: int):
    """The first `n` regular-session bars of SPY on 2011-01-03 (09:30 ET = 14:30Z)."""
    bars = [
        b
        for b in load_bars("data/SPY_1m_2011-01.csv")
        if b.ts.day == 3 and (b.ts.hour, b.ts.minute) >= (14, 30)
    ]
    return bars[:n]


def _live_setup_add() -> None:
    """ALWAYS_LIVE, approved for live trading by a user with the trading permission."""
    from django.contrib.auth.models import Permission, User

    from strategies.setup_services import setup_go_live, user_setup_save

    live = user_setup_save(text=LIVE, actor="alice")
    trader = User.objects.create_user("bob")
    trader.user_permissions.add(Permission.objects.get(codename="can_trade"))
    setup_go_live(name="ALWAYS_LIVE", version=live.version, user=trader)


@pytest.fixture
def paper_setup(settings, db):
    """The account trades live (DRY_RUN=0); ALWAYS_PAPER is new, so in paper mode."""
    from strategies.setup_services import user_setup_save
    from strategies.setups.registry import setups_changed

    settings.ENABLED_SETUPS = []
    settings.DRY_RUN = False
    settings.SESSION_POLICY_FILE = ""
    user_setup_save(text=PAPER, actor="alice")
    yield
    settings.DRY_RUN = True
    setups_changed()


@pytest.mark.django_db(transaction=True)
def test_paper_mode_signal_trades_on_the_paper_book_and_sends_nothing_to_tradier(
    paper_setup, fake_tradier, config
):
    from marketdata.services import bars_upsert
    from trading.brokers.paper import PaperBroker
    from trading.models import Order, Position, Trade
    from trading.pipeline import process_bar_close
    from trading.reconciliation import reconcile_run
    from trading.selectors import exposure_snapshot

    config = replace(config, entry_spread_bps=Decimal("0"))  # entries at market (2 bps spread)
    first, second = _session_start(2)
    fake_tradier.quote("SPY", bid=first.close - 0.01, ask=first.close + 0.01)
    bars_upsert(bars=[first, second])

    (paper,) = process_bar_close(bar=first, config=config)
    paper.refresh_from_db()
    assert (paper.setup, paper.book, paper.outcome) == ("ALWAYS_PAPER", Book.PAPER, "dry_run")
    assert "SETUP_PAPER_MODE" in {c["code"] for c in paper.checks}
    assert fake_tradier.submissions == {} and fake_tradier.orders == {}  # nothing reached it
    orders = Order.objects.filter(signal=paper)
    assert set(orders.values_list("broker", "book")) == {("paper", Book.PAPER)}
    assert Trade.objects.get(signal=paper).book == Book.PAPER
    now = first.ts.replace(minute=first.ts.minute + 1)
    assert exposure_snapshot(now=now).open_trades == 0  # the account holds nothing
    assert exposure_snapshot(now=now, book=Book.PAPER).open_trades == 1

    # a setup approved for live fires on the next bar: its entry goes to Tradier
    _live_setup_add()
    (live,) = process_bar_close(bar=second, config=config)
    live.refresh_from_db()
    assert (live.setup, live.book, live.outcome) == ("ALWAYS_LIVE", Book.ACCOUNT, "submitted")
    assert list(fake_tradier.submissions) == [live.tag]
    assert Trade.objects.get(signal=live).book == Book.ACCOUNT

    # the same bar filled the paper entry at its open worsened by half the 1-cent spread and
    # the half-cent slippage of the default cost model (COST_SPREAD_USD, COST_SLIPPAGE_USD),
    # rounded against the buyer: a paper position, never an account one
    trade = Trade.objects.get(signal=paper)
    expected = (Decimal(str(second.open)) + Decimal("0.005") + Decimal("0.005")).quantize(
        Decimal("0.01"), rounding=ROUND_CEILING
    )
    assert (trade.status, trade.entry_price, trade.remaining_qty) == ("open", expected, paper.qty)
    assert Position.objects.get(book=Book.PAPER, symbol="SPY").qty == paper.qty
    assert PaperBroker(book=Book.PAPER).balances().cash == Decimal("100000") - expected * paper.qty
    assert list(fake_tradier.submissions) == [live.tag]  # the paper stop did not go either
    now = second.ts.replace(minute=second.ts.minute + 1)
    assert exposure_snapshot(now=now).open_trades == 1  # the live trade only

    # reconciliation against Tradier leaves the paper book alone
    paper_rows = {o.pk: o.status for o in Order.objects.filter(book=Book.PAPER)}
    result = reconcile_run(broker=fake_tradier.broker)
    assert {o.pk: o.status for o in Order.objects.filter(book=Book.PAPER)} == paper_rows
    assert not any("SPY" in p for p in result.get("positions", []))
    assert Position.objects.get(book=Book.PAPER, symbol="SPY").qty == paper.qty


@pytest.mark.django_db(transaction=True)
def test_paper_book_statistics_are_per_setup_version(paper_setup, fake_tradier, config):
    from analytics.views import setup_stats
    from marketdata.services import bars_upsert
    from trading.pipeline import process_bar_close

    (first,) = _session_start(1)
    fake_tradier.quote("SPY", bid=first.close - 0.01, ask=first.close + 0.01)
    bars_upsert(bars=[first])
    _live_setup_add()
    process_bar_close(bar=first, config=config)
    paper = Signal.objects.get(setup="ALWAYS_PAPER")

    rows = {r["setup"]: r for r in setup_stats()}
    (version,) = rows["ALWAYS_PAPER"]["versions"]
    assert (version["version"], version["book"], version["signals"]) == (
        paper.setup_version,
        "paper",
        1,
    )
    assert version["outcomes"] == {"dry_run": 1}
    assert rows["ALWAYS_PAPER"]["signals"] == 0  # the account's figures hold no paper trade
    (live_version,) = rows["ALWAYS_LIVE"]["versions"]
    assert (live_version["book"], rows["ALWAYS_LIVE"]["signals"]) == ("account", 1)
