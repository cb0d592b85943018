"""Pegged entry prices stay at or inside the spread, on the tick, so a resting entry can fill;
the prototype's mid - 2 bp sat below the bid on a 1-cent spread."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.brokers.base import Quote
from trading.brokers.pegging import peg_price, price_improvement

D = Decimal
ONE_CENT = Quote("SPY", D("450.00"), D("450.01"), None)
WIDE = Quote("SPY", D("450.00"), D("450.10"), None)


@pytest.mark.parametrize(
    ("quote", "side", "mode", "cents", "expected"),
    [
        (ONE_CENT, "buy", "join", 0, D("450.00")),
        (ONE_CENT, "buy", "mid", 0, D("450.00")),  # 450.005 → our side of the half cent
        (ONE_CENT, "sell", "mid", 0, D("450.01")),
        (WIDE, "buy", "mid", 0, D("450.05")),
        (WIDE, "buy", "cross", 3, D("450.03")),
        (WIDE, "buy", "cross", 50, D("450.10")),  # capped at the ask: marketable, not beyond
        (WIDE, "sell", "cross", 3, D("450.07")),
        (WIDE, "sell", "join", 0, D("450.10")),
        (Quote("X", D("0.5012"), D("0.5020"), None), "buy", "mid", 0, D("0.5016")),
    ],
)
def test_pegs_are_inside_the_spread(quote, side, mode, cents, expected):
    price = peg_price(quote, side=side, mode=mode, cents=D(cents))
    assert price == expected
    assert quote.bid <= price <= quote.ask


def test_the_prototypes_peg_would_not_have_been_inside():
    """mid - 2 bp on a one-cent spread is 449.915: below the bid, never fills."""
    prototype = (ONE_CENT.bid + ONE_CENT.ask) / 2 * (1 - D("0.0002"))
    assert prototype < ONE_CENT.bid
    assert peg_price(ONE_CENT, side="buy", mode="mid") >= ONE_CENT.bid


def test_no_two_sided_quote_means_no_peg_and_bad_modes_raise():
    assert peg_price(None, side="buy", mode="mid") is None
    assert peg_price(Quote("SPY", None, D("1"), D("1")), side="buy", mode="mid") is None
    assert peg_price(Quote("SPY", D("2"), D("1"), None), side="buy", mode="mid") is None  # crossed
    with pytest.raises(ValueError):
        peg_price(ONE_CENT, side="buy", mode="best")


def test_price_improvement_against_the_market_order():
    assert price_improvement("buy", D("450.03"), WIDE) == D("0.07")
    assert price_improvement("sell", D("450.03"), WIDE) == D("0.03")
    assert price_improvement("buy", D("450.03"), Quote("SPY", None, None, D("450"))) is None
