"""The paper broker (DRY_RUN=1): accepts orders after Tradier's own validation and keeps its
book in the ledger itself, so the same order state machine, fills and reconciliation apply.

Fills happen when a bar arrives (`trading.core.lifecycle.fills_on_bar`), with the pure rules
of `trading.core.fills` priced by the symbol's cost model (`risk.costs`, the one sizing and the
backtests use): an order placed at a bar's close fills on a later bar. A market order whose
symbol prints no bar fills on the clock at the last close (`lifecycle.fills_without_bar`).

One instance serves one book: the account's (DRY_RUN=1), or the paper book where setups in
paper mode trade while the account is live (`trading.paper_book`); it reads only that book.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings

from strategies.models import Book
from trading.brokers.base import (
    Balances,
    BrokerOrder,
    BrokerPosition,
    OrderNotFound,
    OrderRequest,
    Quote,
    validate_request,
)
from trading.brokers.order_shapes import needs_entry_price, with_marketable_entry
from trading.core.fills import FillCosts


def fill_costs_from_settings() -> FillCosts:
    """The paper fill model as configured: the account-wide cost model
    (`risk.costs.cost_model_from_settings`: COST_* plus the PAPER_* parts; a symbol's override
    replaces it for that symbol at fill time) and PAPER_FILL_VOLUME_CAP_PCT. Backtests read
    the same."""
    from risk.costs import cost_model_from_settings

    return FillCosts(
        model=cost_model_from_settings(),
        volume_cap_pct=Decimal(settings.PAPER_FILL_VOLUME_CAP_PCT),
    )


def paper_quote(symbol: str, mid: Decimal, model) -> Quote:
    """The paper quote around `mid`: bid/ask half the cost model's spread either side."""
    mid = Decimal(mid)
    half = model.spread_at(mid) / 2
    return Quote(symbol, bid=mid - half, ask=mid + half, last=mid)


class PaperBroker:
    name = "paper"

    def __init__(self, costs: FillCosts | None = None, *, book: str = Book.ACCOUNT) -> None:
        self.costs = costs or fill_costs_from_settings()
        self.book = book

    @staticmethod
    def _new_id() -> str:
        # Random, not a counter: worker processes forked from one parent must never collide.
        return f"P{uuid.uuid4().hex[:16]}"

    # --- the broker interface ------------------------------------------------------------
    def submit(self, request: OrderRequest) -> BrokerOrder:
        # The shape Tradier would receive is checked (a market-entry bracket as its marketable
        # limit), while the paper book keeps the ledger's market entry: the fill model fills it
        # at the next bar like the marketable limit that does not run past its cap.
        if needs_entry_price(request):
            quote = self.quote(request.legs[0].symbol) or self._bracket_midpoint(request)
            shaped = with_marketable_entry(
                request, quote, Decimal(str(settings.ENTRY_MARKETABLE_OFFSET))
            )
            validate_request(shaped)
        else:
            validate_request(request)
        legs = [
            BrokerOrder(id=self._new_id(), status="open", symbol=leg.symbol, side=leg.side)
            for leg in request.legs
        ]
        return BrokerOrder(
            id=self._new_id(),
            status="open",
            symbol=request.symbol,
            side=request.side,
            qty=request.qty,
            order_type=request.order_type,
            tag=request.tag,
            price=request.price,
            stop=request.stop,
            order_class=request.order_class,
            legs=legs,
            raw={"paper": True, "tag": request.tag},
        )

    def cancel(self, broker_order_id: str) -> BrokerOrder:
        order = self._row(broker_order_id)
        return BrokerOrder(id=broker_order_id, status="canceled", tag=order.tag)

    def modify(self, broker_order_id, *, price=None, stop=None, order_type=None) -> BrokerOrder:
        order = self._row(broker_order_id)
        return BrokerOrder(
            id=broker_order_id,
            status="open",
            tag=order.tag,
            price=price if price is not None else order.price,
            stop=stop if stop is not None else order.stop_price,
            order_type=order_type or order.order_type,
        )

    def order(self, broker_order_id: str) -> BrokerOrder:
        return self._as_broker_order(self._row(broker_order_id))

    def orders(self) -> list[BrokerOrder]:
        """The working orders (the paper book IS the ledger: finished ones need no check)."""
        from trading.models import WORKING_STATUSES, Order

        rows = Order.objects.filter(
            broker=self.name, book=self.book, status__in=WORKING_STATUSES
        ).exclude(broker_order_id="")
        return [self._as_broker_order(o) for o in rows]

    def positions(self) -> list[BrokerPosition]:
        from trading.models import Position

        return [
            BrokerPosition(p.symbol, p.qty, p.avg_price * p.qty)
            for p in Position.objects.filter(book=self.book).exclude(qty=0)
        ]

    def balances(self) -> Balances:
        from trading.models import Position
        from trading.selectors import paper_cash

        cash = paper_cash(book=self.book)
        market_value = Decimal("0")
        open_pnl = Decimal("0")
        for p in Position.objects.filter(book=self.book).exclude(qty=0):
            price = p.last_price if p.last_price is not None else p.avg_price
            market_value += price * p.qty
            open_pnl += (price - p.avg_price) * p.qty
        return Balances(
            cash=cash,
            equity=cash + market_value,
            buying_power=cash,
            open_pnl=open_pnl,
            raw={"paper": True, "book": self.book},
        )

    def quote(self, symbol: str) -> Quote | None:
        """A synthetic quote around the last stored price with the symbol's cost-model spread."""
        from marketdata.selectors import bars_as_data

        last = bars_as_data(symbol=symbol, limit=1)
        if not last:
            return None
        from risk.costs import cost_model_for
        from risk.models import SymbolOverride

        row = SymbolOverride.objects.filter(symbol=symbol.upper()).first()
        model = cost_model_for(self.costs.model, row)
        return self.quote_around(symbol, Decimal(str(last[-1].close)), model)

    def quote_around(self, symbol: str, mid: Decimal, model=None) -> Quote:
        """A synthetic quote around `mid` with the spread of `model` (default: the
        account-wide cost model of this broker)."""
        return paper_quote(symbol, mid, model or self.costs.model)

    # --- helpers -------------------------------------------------------------------------
    @staticmethod
    def _bracket_midpoint(request: OrderRequest) -> Quote | None:
        """Without stored bars, the middle of the exit legs stands in for the quote: only the
        shape is checked with it, nothing is priced or filled from it."""
        levels = [leg.price or leg.stop for leg in request.legs[1:] if (leg.price or leg.stop)]
        if not levels:
            return None
        mid = sum(levels, Decimal("0")) / len(levels)
        return Quote(request.legs[0].symbol, bid=None, ask=None, last=mid)

    def _row(self, broker_order_id: str):
        from trading.models import Order

        order = Order.objects.filter(
            broker=self.name, book=self.book, broker_order_id=broker_order_id
        ).first()
        if order is None:
            raise OrderNotFound(broker_order_id)
        return order

    @staticmethod
    def _as_broker_order(order) -> BrokerOrder:
        return BrokerOrder(
            id=order.broker_order_id,
            status=order.status,
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            order_type=order.order_type,
            tag=order.tag,
            filled_qty=order.filled_qty,
            avg_fill_price=order.avg_fill_price,
            price=order.price,
            stop=order.stop_price,
            order_class=order.order_class,
        )
