"""The state machines of orders and trades, as transition tables: nothing else decides what
may follow what. An illegal transition is refused (and logged by whoever applies it)."""

from __future__ import annotations

from trading.core.types import OrderState as S
from trading.core.types import TradeState as T

ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED, S.CANCELLED}),
    S.SUBMITTED: frozenset(
        {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}
    ),
    S.OPEN: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}

# A trade is pending while its entry works, open once any of it filled, and ends closed (all
# sold) or cancelled (the entry never filled). Nothing comes back from an end state: a
# replacement entry order keeps its trade pending instead.
TRADE_TRANSITIONS: dict[str, frozenset[str]] = {
    T.PENDING: frozenset({T.OPEN, T.CANCELLED}),
    T.OPEN: frozenset({T.CLOSED}),
    T.CLOSED: frozenset(),
    T.CANCELLED: frozenset(),
}

# Tradier's status words -> ours.
BROKER_STATUS = {
    "pending": S.SUBMITTED,
    "open": S.OPEN,
    "partially_filled": S.PARTIALLY_FILLED,
    "filled": S.FILLED,
    "expired": S.EXPIRED,
    "canceled": S.CANCELLED,
    "cancelled": S.CANCELLED,
    "pending_cancel": S.OPEN,
    "rejected": S.REJECTED,
    "error": S.REJECTED,
    "calculated": S.SUBMITTED,
    "accepted_for_bidding": S.SUBMITTED,
    "held": S.SUBMITTED,
    "submitted": S.SUBMITTED,
    "new": S.NEW,
}


def can_transition(from_status: str, to_status: str) -> bool:
    """May an order go from `from_status` to `to_status` in one step?"""
    return to_status in ORDER_TRANSITIONS.get(from_status, frozenset())


def trade_can_transition(from_status: str, to_status: str) -> bool:
    """May a trade go from `from_status` to `to_status`?"""
    return to_status in TRADE_TRANSITIONS.get(from_status, frozenset())


def path_to(from_status: str, to_status: str) -> list[str]:
    """The shortest legal path of order statuses after `from_status` ending at `to_status`
    (used when the broker reports a later state than we saw, e.g. new -> filled), or []."""
    if from_status == to_status:
        return []
    frontier = [[from_status]]
    seen = {from_status}
    while frontier:
        nxt = []
        for path in frontier:
            for candidate in sorted(ORDER_TRANSITIONS.get(path[-1], ())):
                if candidate in seen:
                    continue
                if candidate == to_status:
                    return path[1:] + [candidate]
                seen.add(candidate)
                nxt.append(path + [candidate])
        frontier = nxt
    return []
