"""The one broker interface both the Tradier client and the paper broker implement.

Requests and answers are plain value objects (Decimal prices, int quantities); statuses are
normalised to the order state machine's names (`trading.models.OrderStatus`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


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
    """Tradier's documented shape rules (`trading.brokers.order_shapes.validate`), applied
    before anything is sent by either broker. Raises OrderShapeError (a BrokerRejected)."""
    from trading.brokers.order_shapes import validate

    validate(request)
