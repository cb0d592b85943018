"""The one broker interface both the Tradier client and the paper broker implement.

Requests and answers are plain value objects (Decimal prices, int quantities); statuses are
normalised to the order state machine's names (`trading.models.OrderStatus`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

TAG_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")


class BrokerError(Exception):
    """The broker refused or failed the request."""


class BrokerRejected(BrokerError):
    """The broker answered and said no: nothing was placed."""


class BrokerUnavailable(BrokerError):
    """No usable answer (timeouts, 5xx after retries): the outcome of a write is unknown and
    reconciliation must settle it."""


class OrderNotFound(BrokerError):
    pass


@dataclass(frozen=True)
class Leg:
    """One leg of an OCO/OTOCO order."""

    symbol: str
    side: str
    qty: int
    order_type: str
    price: Decimal | None = None
    stop: Decimal | None = None


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    side: str  # buy, sell, sell_short, buy_to_cover
    qty: int
    order_type: str  # market, limit, stop, stop_limit
    tag: str
    price: Decimal | None = None
    stop: Decimal | None = None
    duration: str = "day"
    order_class: str = "equity"  # equity, oco, oto, otoco
    legs: tuple[Leg, ...] = ()


@dataclass
class BrokerOrder:
    """An order as the broker reports it."""

    id: str
    status: str
    symbol: str = ""
    side: str = ""
    qty: int = 0
    order_type: str = ""
    tag: str = ""
    filled_qty: int = 0
    avg_fill_price: Decimal | None = None
    last_fill_price: Decimal | None = None
    price: Decimal | None = None
    stop: Decimal | None = None
    order_class: str = "equity"
    created_at: str = ""
    legs: list[BrokerOrder] = field(default_factory=list)
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    qty: int
    cost_basis: Decimal = Decimal("0")


@dataclass(frozen=True)
class Balances:
    cash: Decimal
    equity: Decimal
    buying_power: Decimal | None = None
    open_pnl: Decimal = Decimal("0")
    day_pnl: Decimal | None = None
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None

    @property
    def mid(self) -> Decimal | None:
        if self.bid and self.ask and self.ask >= self.bid > 0:
            return (self.bid + self.ask) / 2
        return self.last

    @property
    def spread_bps(self) -> Decimal | None:
        mid = self.mid
        if not (self.bid and self.ask and mid):
            return None
        return (self.ask - self.bid) / mid * Decimal(10000)


class Broker(Protocol):
    name: str

    def submit(self, request: OrderRequest) -> BrokerOrder:
        """Place an order. Raises BrokerRejected (nothing placed) or BrokerUnavailable (outcome
        unknown after looking the tag up)."""

    def cancel(self, broker_order_id: str) -> BrokerOrder: ...

    def modify(
        self,
        broker_order_id: str,
        *,
        price: Decimal | None = None,
        stop: Decimal | None = None,
        order_type: str | None = None,
    ) -> BrokerOrder: ...

    def order(self, broker_order_id: str) -> BrokerOrder: ...

    def orders(self) -> list[BrokerOrder]: ...

    def positions(self) -> list[BrokerPosition]: ...

    def balances(self) -> Balances: ...

    def quote(self, symbol: str) -> Quote | None: ...


def validate_request(request: OrderRequest) -> None:
    """Tradier's documented rules, applied before anything is sent (both brokers)."""
    if not TAG_RE.match(request.tag or ""):
        raise BrokerRejected(f"tag {request.tag!r}: letters, digits and '-' only, 1-255 chars")
    if request.order_class == "otoco":
        _validate_otoco(request.legs)
        return
    if request.order_class == "oco":
        if len(request.legs) != 2:
            raise BrokerRejected("oco needs exactly 2 legs")
        for leg in request.legs:
            _validate_leg(leg, allow_market=False)
        return
    _validate_leg(
        Leg(
            request.symbol,
            request.side,
            request.qty,
            request.order_type,
            request.price,
            request.stop,
        ),
        allow_market=True,
    )


def _validate_leg(leg: Leg, *, allow_market: bool) -> None:
    if leg.side not in ("buy", "sell", "sell_short", "buy_to_cover"):
        raise BrokerRejected(f"side {leg.side!r} invalid")
    if int(leg.qty) < 1:
        raise BrokerRejected("quantity must be >= 1")
    if leg.order_type not in ("market", "limit", "stop", "stop_limit"):
        raise BrokerRejected(f"type {leg.order_type!r} invalid")
    if leg.order_type == "market" and not allow_market:
        raise BrokerRejected("only the first leg may be a market order")
    if leg.order_type in ("limit", "stop_limit") and (leg.price is None or leg.price <= 0):
        raise BrokerRejected(f"{leg.order_type} order needs price")
    if leg.order_type in ("stop", "stop_limit") and (leg.stop is None or leg.stop <= 0):
        raise BrokerRejected(f"{leg.order_type} order needs stop")


def _validate_otoco(legs: tuple[Leg, ...]) -> None:
    if len(legs) != 3:
        raise BrokerRejected("otoco needs exactly 3 legs")
    for index, leg in enumerate(legs):
        _validate_leg(leg, allow_market=index == 0)
    if legs[1].symbol != legs[2].symbol:
        raise BrokerRejected("otoco legs 1 and 2 must be the same symbol")
    if legs[1].order_type == legs[2].order_type:
        raise BrokerRejected("otoco legs 1 and 2 must have different types")
