"""The paper book: where a setup in paper mode trades while the account trades live.

A setup whose current version nobody with the trading permission approved for live trading
(`strategies.setup_services.setup_go_live`, audited) never reaches the live broker. With
DRY_RUN=0 its signals (`Signal.book == "paper"`, decided by the strategy stage) go through the
same lifecycle core (`trading.core.step.bar_step`) over a second ORM ledger of book "paper":
the paper broker's fill model on the stored bars, and the book's own orders, trades, positions,
cash (PAPER_STARTING_CASH_USD) and exposure for the risk rules. Nothing in it counts against the
account's exposure or buying power, is sent to Tradier, or is reconciled against Tradier; its
trades carry the signal's setup version (`analytics.setup_stats`).

With DRY_RUN=1 the account itself is the paper broker and every signal trades on the account.
"""

from __future__ import annotations

from django.conf import settings

from strategies.models import Book
from trading.brokers.paper import PaperBroker

_broker: PaperBroker | None = None


def paper_book_active() -> bool:
    """The paper book runs while the account trades live (DRY_RUN=0)."""
    return not settings.DRY_RUN


def paper_book_broker() -> PaperBroker:
    """The paper broker of the paper book (the PAPER_* fill model; reads only that book)."""
    global _broker
    if _broker is None:
        _broker = PaperBroker(book=Book.PAPER)
    return _broker


def book_of(signal) -> str:
    """The book a stored signal trades on: the one the strategy stage recorded on it."""
    return getattr(signal, "book", Book.ACCOUNT) or Book.ACCOUNT
