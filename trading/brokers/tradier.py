"""Tradier brokerage client (orders, positions, balances, quotes) on the shared Tradier HTTP
plumbing (`marketdata.clients.tradier_http`: token, form encoding, retries, request metrics).

Order submission is NOT blindly retried: a timeout or 5xx may mean Tradier placed the order.
Before each new attempt the order's `tag` is looked up in the account's orders; if found, that
order is the answer. Only when the tag is absent is the request sent again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings

from marketdata.clients.tradier_budget import CRITICAL, ENTRY
from marketdata.clients.tradier_http import (
    TradierError,
    TradierHTTP,
    TradierRetryableError,
    TradierTransportError,
    as_list,
    dig,
)
from trading.brokers.base import (
    Balances,
    BrokerOrder,
    BrokerPosition,
    BrokerRejected,
    BrokerUnavailable,
    OrderNotFound,
    OrderRequest,
    Quote,
    validate_request,
)
from trading.brokers.order_shapes import BUY_SIDES, needs_entry_price, with_marketable_entry

log = logging.getLogger(__name__)


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "" or (isinstance(value, str) and value.lower() == "null"):
        return None
    try:
        return Decimal(str(value))
    except Exception:  # noqa: BLE001 - a garbage number is "unknown"
        return None


def _int(value: Any) -> int:
    number = _dec(value)
    return int(number) if number is not None else 0


def _fmt(value: Decimal | None) -> str | None:
    return None if value is None else f"{Decimal(value):.2f}"


def order_form(request: OrderRequest) -> dict[str, str]:
    """The form fields Tradier documents for this order (indexed legs for oco/otoco)."""
    form: dict[str, str] = {
        "class": request.order_class,
        "duration": request.duration,
        "tag": request.tag,
    }
    if request.order_class in ("oco", "oto", "otoco"):
        for index, leg in enumerate(request.legs):
            form[f"symbol[{index}]"] = leg.symbol
            form[f"side[{index}]"] = leg.side
            form[f"quantity[{index}]"] = str(int(leg.qty))
            form[f"type[{index}]"] = leg.order_type
            if leg.price is not None:
                form[f"price[{index}]"] = _fmt(leg.price)
            if leg.stop is not None:
                form[f"stop[{index}]"] = _fmt(leg.stop)
        return form
    form.update(
        symbol=request.symbol,
        side=request.side,
        quantity=str(int(request.qty)),
        type=request.order_type,
    )
    if request.price is not None:
        form["price"] = _fmt(request.price)
    if request.stop is not None:
        form["stop"] = _fmt(request.stop)
    return form


def submit_priority(request: OrderRequest) -> int:
    """Orders that close or protect (sells, covers, OCO exits) go before new entries."""
    side = request.legs[0].side if request.legs else request.side
    if request.order_class == "oco" or side not in BUY_SIDES:
        return CRITICAL
    return ENTRY


def parse_order(data: dict) -> BrokerOrder:
    legs = [parse_order(leg) for leg in as_list(data.get("leg"))]
    return BrokerOrder(
        id=str(data.get("id", "")),
        status=str(data.get("status", "")).lower(),
        symbol=str(data.get("symbol") or ""),
        side=str(data.get("side") or ""),
        qty=_int(data.get("quantity")),
        order_type=str(data.get("type") or ""),
        tag=str(data.get("tag") or ""),
        filled_qty=_int(data.get("exec_quantity")),
        avg_fill_price=_dec(data.get("avg_fill_price")) or None,
        last_fill_price=_dec(data.get("last_fill_price")) or None,
        price=_dec(data.get("price")),
        stop=_dec(data.get("stop_price") or data.get("stop")),
        order_class=str(data.get("class") or "equity"),
        created_at=str(data.get("create_date") or ""),
        legs=legs,
        raw=data,
    )


class TradierBroker:
    name = "tradier"

    def __init__(
        self,
        *,
        http: TradierHTTP,
        account_id: str,
        submit_attempts: int = 4,
        backoff_sec: float = 0.5,
        settle_sec: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        marketable_offset: Decimal | None = None,
    ) -> None:
        self.http = http
        self.account_id = account_id
        self.submit_attempts = max(1, submit_attempts)
        self.backoff_sec = backoff_sec
        self.settle_sec = (
            float(settings.TRADIER_SUBMIT_SETTLE_SEC) if settle_sec is None else settle_sec
        )
        self.sleep = sleep
        self.marketable_offset = (
            Decimal(str(settings.ENTRY_MARKETABLE_OFFSET))
            if marketable_offset is None
            else marketable_offset
        )

    @classmethod
    def from_settings(cls, **overrides) -> TradierBroker:
        http = overrides.pop("http", None) or TradierHTTP.from_settings(
            **overrides.pop("http_kwargs", {})
        )
        return cls(
            http=http,
            account_id=overrides.pop("account_id", settings.TRADIER_ACCOUNT_ID),
            submit_attempts=overrides.pop("submit_attempts", settings.TRADIER_MAX_RETRIES + 1),
            **overrides,
        )

    @property
    def _orders_path(self) -> str:
        return f"accounts/{self.account_id}/orders"

    form_of = staticmethod(order_form)

    # --- orders --------------------------------------------------------------------------
    def submit(self, request: OrderRequest) -> BrokerOrder:
        request = self.shaped(request)
        validate_request(request)
        form = order_form(request)
        priority = submit_priority(request)
        last_error: Exception | None = None
        for attempt in range(self.submit_attempts):
            if attempt:
                self.sleep(self.backoff_sec * (2 ** (attempt - 1)))
                existing = self._settled(request.tag, last_error)
                if existing is not None:
                    log.warning(
                        "tag %s found at Tradier after %s: not resending", request.tag, last_error
                    )
                    return existing
            try:
                body = self.http.post(
                    self._orders_path, endpoint="orders.create", data=form, priority=priority
                )
            except (TradierRetryableError, TradierTransportError) as exc:
                last_error = exc
                continue
            except TradierError as exc:
                raise BrokerRejected(str(exc)) from exc
            order = dig(body, "order") or {}
            if not order.get("id"):
                raise BrokerRejected(f"Tradier answered without an order id: {body}")
            status = str(order.get("status", "ok")).lower()
            return BrokerOrder(
                id=str(order["id"]),
                status="submitted" if status == "ok" else status,
                symbol=request.symbol,
                side=request.side,
                qty=request.qty,
                order_type=request.order_type,
                tag=request.tag,
                price=request.price,
                stop=request.stop,
                order_class=request.order_class,
                raw=body,
            )
        existing = self._find_by_tag(request.tag)
        if existing is not None:
            return existing
        raise BrokerUnavailable(f"Tradier submit of {request.tag} failed: {last_error}")

    def shaped(self, request: OrderRequest) -> OrderRequest:
        """A market-entry bracket as Tradier takes it: the entry leg becomes a marketable limit
        (ask + ENTRY_MARKETABLE_OFFSET; last + offset without a quote). See order_shapes."""
        if not needs_entry_price(request):
            return request
        entry = request.legs[0]
        try:
            quote = self.quote(entry.symbol)
        except BrokerUnavailable as exc:
            log.warning("no quote for the marketable entry of %s: %s", request.tag, exc)
            quote = None
        return with_marketable_entry(request, quote, self.marketable_offset)

    def events_session(self) -> tuple[str, str]:
        """A fresh account streaming session: (sessionid, websocket url). Tradier: valid 5
        minutes to connect, one session per account at a time."""
        try:
            body = self.http.post(
                "accounts/events/session",
                endpoint="accounts.events.session",
                idempotent=True,  # a second session only replaces the first
                priority=CRITICAL,
            )
        except TradierError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        sid = dig(body, "stream", "sessionid")
        if not sid:
            raise BrokerUnavailable(f"Tradier answered no sessionid: {body}")
        return str(sid), str(dig(body, "stream", "url") or "")

    def profile(self) -> dict:
        try:
            body = self.http.get("user/profile", endpoint="user.profile")
        except TradierError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        return dig(body, "profile") or {}

    def orders_by_tag(self, tag: str) -> list[BrokerOrder]:
        """The account's orders carrying `tag` (Tradier has no tag filter: list and match)."""
        return [order for order in self.orders() if order.tag == tag]

    def _settled(self, tag: str, error: Exception | None) -> BrokerOrder | None:
        """The order of `tag` if Tradier has it, looked up before a resend. After a failure
        that may have reached Tradier (a timeout or dropped connection, a 5xx: the request can
        still be in flight and be booked later) the tag is looked up again over
        TRADIER_SUBMIT_SETTLE_SEC before the order may be sent a second time; a 429 is a
        refusal (nothing was placed), one look-up suffices."""
        existing = self._find_by_tag(tag)
        refused = isinstance(error, TradierRetryableError) and error.status == 429
        if existing is not None or refused or self.settle_sec <= 0:
            return existing
        waited, step = 0.0, min(0.5, self.settle_sec)
        while existing is None and waited < self.settle_sec:
            self.sleep(step)
            waited += step
            existing = self._find_by_tag(tag)
        return existing

    def _find_by_tag(self, tag: str) -> BrokerOrder | None:
        try:
            for order in self.orders():
                if order.tag == tag:
                    return order
        except BrokerUnavailable as exc:
            log.warning("tag lookup for %s failed: %s", tag, exc)
            raise
        return None

    def cancel(self, broker_order_id: str) -> BrokerOrder:
        try:
            body = self.http.delete(
                f"{self._orders_path}/{broker_order_id}", endpoint="orders.cancel"
            )
        except (TradierRetryableError, TradierTransportError) as exc:
            raise BrokerUnavailable(str(exc)) from exc
        except TradierError as exc:
            raise BrokerRejected(str(exc)) from exc
        order = dig(body, "order") or {}
        status = "canceled" if str(order.get("status", "ok")).lower() == "ok" else order["status"]
        return BrokerOrder(id=str(order.get("id", broker_order_id)), status=status, raw=body)

    def modify(self, broker_order_id, *, price=None, stop=None, order_type=None) -> BrokerOrder:
        form: dict[str, str] = {}
        if order_type:
            form["type"] = order_type
        if price is not None:
            form["price"] = _fmt(price)
        if stop is not None:
            form["stop"] = _fmt(stop)
        try:
            body = self.http.put(
                f"{self._orders_path}/{broker_order_id}",
                endpoint="orders.modify",
                data=form,
                idempotent=True,  # setting the same values twice is harmless
            )
        except (TradierRetryableError, TradierTransportError) as exc:
            raise BrokerUnavailable(str(exc)) from exc
        except TradierError as exc:
            raise BrokerRejected(str(exc)) from exc
        order = dig(body, "order") or {}
        return BrokerOrder(id=str(order.get("id", broker_order_id)), status="open", raw=body)

    def order(self, broker_order_id: str) -> BrokerOrder:
        try:
            body = self.http.get(
                f"{self._orders_path}/{broker_order_id}",
                endpoint="orders.get",
                params={"includeTags": "true"},
            )
        except TradierError as exc:
            if exc.status == 404:
                raise OrderNotFound(broker_order_id) from exc
            raise BrokerUnavailable(str(exc)) from exc
        data = dig(body, "order")
        if not data:
            raise OrderNotFound(broker_order_id)
        return parse_order(data)

    def orders(self) -> list[BrokerOrder]:
        """Every order of the account (today's and working), across pages."""
        out: list[BrokerOrder] = []
        seen: set[str] = set()
        for page in range(1, 51):
            try:
                body = self.http.get(
                    self._orders_path,
                    endpoint="orders.list",
                    params={"includeTags": "true", "page": str(page)},
                )
            except TradierError as exc:
                raise BrokerUnavailable(str(exc)) from exc
            rows = as_list(dig(body, "orders", "order"))
            fresh = [parse_order(r) for r in rows if str(r.get("id")) not in seen]
            if not fresh:
                break
            for order in fresh:
                seen.add(order.id)
            out.extend(fresh)
        return out

    # --- account -------------------------------------------------------------------------
    def positions(self) -> list[BrokerPosition]:
        try:
            body = self.http.get(f"accounts/{self.account_id}/positions", endpoint="positions")
        except TradierError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        return [
            BrokerPosition(
                symbol=str(p.get("symbol")),
                qty=_int(p.get("quantity")),
                cost_basis=_dec(p.get("cost_basis")) or Decimal("0"),
            )
            for p in as_list(dig(body, "positions", "position"))
        ]

    def balances(self) -> Balances:
        try:
            body = self.http.get(f"accounts/{self.account_id}/balances", endpoint="balances")
        except TradierError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        b = dig(body, "balances") or {}
        kind = str(b.get("account_type") or "")
        buying_power = None
        for section, key in (("margin", "stock_buying_power"), ("pdt", "stock_buying_power")):
            value = _dec(dig(b, section, key))
            if value is not None:
                buying_power = value
                break
        cash_available = _dec(dig(b, "cash", "cash_available"))
        if buying_power is None and cash_available is not None:
            buying_power = cash_available
        cash = _dec(b.get("total_cash")) or Decimal("0")
        return Balances(
            cash=cash,
            equity=_dec(b.get("total_equity")) or Decimal("0"),
            buying_power=buying_power,
            open_pnl=_dec(b.get("open_pl")) or Decimal("0"),
            day_pnl=None,
            raw={"account_type": kind, **{k: v for k, v in b.items() if not isinstance(v, dict)}},
        )

    def quote(self, symbol: str) -> Quote | None:
        try:
            body = self.http.get("markets/quotes", endpoint="quotes", params={"symbols": symbol})
        except TradierError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        for q in as_list(dig(body, "quotes", "quote")):
            if str(q.get("symbol", "")).upper() == symbol.upper():
                return Quote(symbol, _dec(q.get("bid")), _dec(q.get("ask")), _dec(q.get("last")))
        return None
