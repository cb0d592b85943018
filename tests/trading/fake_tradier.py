"""A stateful local fake of Tradier's brokerage API for tests, following Tradier's documentation.

- REST through `httpx.MockTransport` (`transport()`), or over real HTTP (`serve_http()`), in
  Tradier's shapes (fixtures copied from the shared fixtures: one object or a list, "null").
- The documented validation of equity/oto/oco/otoco orders (first order of an OTO/OTOCO and
  every OCO leg never market, paired legs of one symbol and different types, tag charset and
  length, whole quantities, price/stop by type): a 400 naming the problem.
- Resting orders filled from a scripted price tape (`quote()` then `tick()`): a buy limit fills
  when the ask reaches it, a sell stop when the bid does, markets at the touch (or at
  `market_price(side, touch)`: a cost model's market fill beyond the print); an OTOCO's exits
  start working when its entry has filled; a filled OCO leg cancels its sibling. A partial
  fill of one leg leaves the sibling at its full quantity (Tradier documents nothing else; the
  ledger must not rely on the broker shrinking it). A leg's stop or price is modified by the
  leg's own id (PUT), the pair is cancelled by the parent's id (DELETE).
- The account event stream: `POST /v1/accounts/events/session` hands out a session id (valid 5
  minutes, one at a time); `start_stream()` runs the websocket on 127.0.0.1 (port 0) that takes
  `{"events":["order"],"sessionid":...}` and sends order events with the documented fields
  (id, event, status, type, price, stop_price, avg_fill_price, exec_quantity,
  last_fill_quantity, remaining_quantity, transaction_date, create_date, account, tag,
  parent_id) and heartbeats. `drop_stream()` cuts it; events while no client listens are lost
  (as they would be), so only reconciliation can find them.
- Balances: a fixture, or (`cash_start`) an account whose cash follows its own fills.
- Rejection after a 200 (`reject_next(reason)`): the order is accepted, then rejected by
  "downstream risk" on the next request or tick, with an `errors` property on GET.
- Rate limits per endpoint class and fixed interval (`limits`, `window_sec`), every answer
  carrying X-Ratelimit-Allowed/Used/Available/Expiry, 429 beyond the limit (`throttled` counts).
- Faults on demand for order POSTs (`faults`): 429, 5xx, a timeout before the order is placed,
  and a timeout or 500 AFTER it was placed (the unknown-outcome case).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import httpx

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tradier"
TAG_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")
DONE = ("filled", "canceled", "expired", "rejected")
NOT_MARKET = ("limit", "stop", "stop_limit")
SESSION_TTL_SEC = 300


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def endpoint_class(method: str, path: str) -> str:
    """Tradier's three limits: trading (order writes), market data, standard (the rest)."""
    if path.startswith("/v1/markets/") and not path.startswith("/v1/markets/events"):
        return "market"
    if "/orders" in path and method in ("POST", "PUT", "DELETE"):
        return "trading"
    return "standard"


class FakeTradier:
    def __init__(
        self,
        account: str = "VA00000000",
        *,
        limits: dict[str, int] | None = None,
        window_sec: float = 60.0,
        heartbeat_sec: float = 60.0,
        clock=None,
    ) -> None:
        self.account = account
        self.orders: dict[int, dict] = {}
        self.positions: dict[str, dict] = {}
        self.submissions: Counter[str] = Counter()  # tag -> POSTs that placed an order
        self.post_attempts = 0
        self.faults: list[str] = []  # consumed one per order POST
        self.rejections: list[str] = []
        self.next_id = 257459
        self.requests: list[httpx.Request] = []
        self.balances_fixture = "get_balance_margin.json"
        self.cash_start: float | None = None  # set: balances follow the fills (cash account)
        self.match_on_create = True  # False: orders fill only on a later tick() of the tape
        self.cash_flow = 0.0
        self.quotes: dict[str, dict] = {}
        self.limits = limits or {"trading": 60, "standard": 120, "market": 120}
        self.window_sec = window_sec
        self.windows: dict[str, tuple[float, int]] = {}  # class -> (interval start, used)
        self.throttled: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.events: list[dict] = []  # every order event, delivered or not
        self.delivered: list[dict] = []
        self.sessions: dict[str, float] = {}
        self.pending_rejects: list[tuple[int, str]] = []
        self._reject_next: list[str] = []
        self.heartbeat_sec = heartbeat_sec
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws_server = None
        self._ws_clients: set = set()
        self._ws_thread: threading.Thread | None = None
        self._http_server: ThreadingHTTPServer | None = None
        self.stream_connections = 0
        self.created_wall: dict[int, float] = {}  # order id -> wall time it was accepted
        self.mute_stream = False  # connected, but order events are lost (heartbeats still go)
        self.stream_refusals: list[str] = []
        # (side, touch) -> the price a market order (or a triggered stop) fills at; None: the
        # touch. A parity test sets the cost model's market fill here: a market execution pays
        # the spread and slippage beyond the print, a limit does not
        self.market_price = None

    # --- the price tape -------------------------------------------------------------------
    def quote(self, symbol: str, bid, ask, last=None) -> None:
        """Set the touch of `symbol` (no fills yet: `tick()` applies it to resting orders)."""
        bid, ask = float(bid), float(ask)
        last = float(last) if last is not None else round((bid + ask) / 2, 4)
        self.quotes[symbol.upper()] = {
            "symbol": symbol.upper(),
            "bid": bid,
            "ask": ask,
            "last": last,
        }

    def tick(self, symbol: str, bid=None, ask=None, last=None) -> list[dict]:
        """Move the tape (optionally to a new touch) and fill what it reaches; the events."""
        with self.lock:
            if bid is not None:
                self.quote(symbol, bid, ask if ask is not None else bid, last)
            self._apply_pending_rejects()
            return self._match(symbol.upper())

    def tape(self, symbol: str, prices) -> None:
        """Play a list of (bid, ask) touches in order, filling as each arrives."""
        for bid, ask in prices:
            self.tick(symbol, bid, ask)

    def _match(self, symbol: str) -> list[dict]:
        q = self.quotes.get(symbol)
        before = len(self.events)
        if not q:
            return []
        for order in list(self.orders.values()):
            for node, parent in self._working_nodes(order):
                if node["symbol"] != symbol:
                    continue
                price = self._touch_fill_price(node, q)
                if price is not None:
                    self._execute(node, parent, node["quantity"] - node["exec_quantity"], price)
        return self.events[before:]

    def _working_nodes(self, order: dict):
        """(node, parent) of the orders that can fill now: an OTOCO/OTO's exits only after
        its entry filled."""
        legs = order.get("leg")
        if not legs:
            if order["status"] not in DONE:
                yield order, None
            return
        if order["class"] == "oco":
            for leg in legs:
                if leg["status"] not in DONE:
                    yield leg, order
            return
        entry = legs[0]
        if entry["status"] not in DONE:
            yield entry, order
            return
        if entry["status"] == "filled":
            for leg in legs[1:]:
                if leg["status"] not in DONE:
                    yield leg, order

    def _market_fill(self, side: str, touch: float) -> float:
        return touch if self.market_price is None else float(self.market_price(side, touch))

    def _touch_fill_price(self, node: dict, q: dict) -> float | None:
        buying = node["side"] in ("buy", "buy_to_cover")
        touch = q["ask"] if buying else q["bid"]
        kind, limit, stop = node["type"], node.get("price"), node.get("stop_price")
        if kind == "market":
            return self._market_fill(node["side"], touch)
        if kind == "limit":
            if buying and touch <= limit:
                return min(limit, touch)
            if not buying and touch >= limit:
                return max(limit, touch)
            return None
        triggered = (touch >= stop) if buying else (touch <= stop)
        if not triggered:
            return None
        if kind == "stop":
            return self._market_fill(node["side"], touch)
        if buying and touch <= limit:
            return touch
        if not buying and touch >= limit:
            return touch
        return None

    # --- fills and events -----------------------------------------------------------------
    def fill(self, order_id: int, qty: int | None = None, price: str = "100.00") -> None:
        """Execute `qty` (default: the rest) of an order, whatever the tape says."""
        with self.lock:
            node, parent = self._find(int(order_id))
            rest = node["quantity"] - node["exec_quantity"]
            qty = rest if qty is None else min(float(qty), rest)
            self._execute(node, parent, qty, float(price))

    def fill_leg(self, order_id: int, index: int, price: str, qty: int | None = None) -> None:
        """Fill one leg of a bracket; like Tradier, a filled exit leg cancels its sibling."""
        with self.lock:
            order = self.orders[int(order_id)]
            leg = order["leg"][index]
            rest = leg["quantity"] - leg["exec_quantity"]
            self._execute(leg, order, rest if qty is None else min(float(qty), rest), float(price))

    def _execute(self, node: dict, parent: dict | None, qty: float, price: float) -> None:
        if qty <= 0 or node["status"] in DONE:
            return
        done = node["exec_quantity"]
        node["avg_fill_price"] = round(
            (node["avg_fill_price"] * done + price * qty) / (done + qty), 6
        )
        node["exec_quantity"] = done + qty
        node["last_fill_price"] = price
        node["last_fill_quantity"] = qty
        node["remaining_quantity"] = node["quantity"] - node["exec_quantity"]
        status = "filled" if node["remaining_quantity"] <= 0 else "partially_filled"
        sign = 1 if node["side"].startswith("buy") else -1
        pos = self.positions.setdefault(
            node["symbol"], {"symbol": node["symbol"], "quantity": 0.0, "cost_basis": 0.0}
        )
        pos["quantity"] += sign * qty
        pos["cost_basis"] += sign * qty * price
        self.cash_flow -= sign * qty * price
        self._set_status(node, status)
        if parent is not None:
            self._after_leg(node, parent)

    def _after_leg(self, node: dict, parent: dict) -> None:
        legs = parent["leg"]
        index = legs.index(node)
        paired = (0, 1) if parent["class"] == "oco" else (1, 2)
        if index in paired and node["status"] == "filled":
            other = legs[paired[1] if index == paired[0] else paired[0]]
            if other["status"] not in DONE:
                self._set_status(other, "canceled")
        if all(leg["status"] in DONE for leg in legs) or (
            index in paired and node["status"] == "filled"
        ):
            parent["status"] = "filled" if node["status"] == "filled" else node["status"]
        elif index == 0 and node["status"] in ("rejected", "canceled", "expired"):
            for leg in legs[1:]:  # an entry that dies takes its exits with it
                if leg["status"] not in DONE:
                    self._set_status(leg, "canceled")
            parent["status"] = node["status"]

    def _set_status(self, node: dict, status: str) -> None:
        node["status"] = status
        node["transaction_date"] = _iso(self.clock())
        self._emit(node)

    def _emit(self, node: dict) -> None:
        event = {
            "id": node["id"],
            "event": "order",
            "status": node["status"],
            "type": node["type"],
            "price": node.get("price") or 0.0,
            "stop_price": node.get("stop_price") or 0.0,
            "avg_fill_price": node["avg_fill_price"],
            "exec_quantity": node["exec_quantity"],
            "last_fill_quantity": node.get("last_fill_quantity", 0.0),
            "remaining_quantity": node["remaining_quantity"],
            "transaction_date": node["transaction_date"],
            "create_date": node["create_date"],
            "account": self.account,
        }
        if node.get("tag"):
            event["tag"] = node["tag"]
        if node.get("parent_id"):
            event["parent_id"] = node["parent_id"]
        self.events.append(event)
        self._broadcast(event)

    def _find(self, order_id: int) -> tuple[dict, dict | None]:
        if order_id in self.orders:
            return self.orders[order_id], None
        for order in self.orders.values():
            for leg in order.get("leg", []):
                if leg["id"] == order_id:
                    return leg, order
        raise KeyError(order_id)

    def by_tag(self, tag: str) -> list[dict]:
        return [o for o in self.orders.values() if o.get("tag") == tag]

    def reject_next(self, reason: str = "AccountMarginRuleViolation") -> None:
        """The next order placed is answered 200, then rejected downstream."""
        self._reject_next.append(reason)

    def reject(self, order_id: int, reason: str = "OrderRejectedByRisk") -> None:
        """Reject a working order (or leg) now, as Tradier's risk systems may after a 200."""
        with self.lock:
            node, parent = self._find(int(order_id))
            node["errors"] = {"error": [reason]}
            self._set_status(node, "rejected")
            if parent is not None:
                self._after_leg(node, parent)

    def _apply_pending_rejects(self) -> None:
        while self.pending_rejects:
            order_id, reason = self.pending_rejects.pop(0)
            order = self.orders[order_id]
            order["errors"] = {"error": [reason]}
            for leg in order.get("leg", []):
                if leg["status"] not in DONE:
                    leg["status"] = "rejected"
                    leg["transaction_date"] = _iso(self.clock())
            self._set_status(order, "rejected")

    # --- rate limits ------------------------------------------------------------------------
    def _rate(self, klass: str) -> tuple[bool, dict[str, str]]:
        now = time.time()
        start, used = self.windows.get(klass, (now, 0))
        if now - start >= self.window_sec:
            start, used = now, 0
        limit = self.limits[klass]
        allowed = used < limit
        if allowed:
            used += 1
        self.windows[klass] = (start, used)
        headers = {
            "X-Ratelimit-Allowed": str(limit),
            "X-Ratelimit-Used": str(used),
            "X-Ratelimit-Available": str(max(0, limit - used)),
            "X-Ratelimit-Expiry": str(int((start + self.window_sec) * 1000)),
        }
        return allowed, headers

    # --- HTTP -------------------------------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def tradier_broker(self, *, timeout: float = 1.0, max_retries: int = 3, budget=None, **broker):
        """The project's TradierBroker over this fake (its in-process transport, no sleeps
        between retries); `broker` goes to TradierBroker (submit_attempts, ...)."""
        from marketdata.clients.tradier_http import TradierHTTP
        from trading.brokers.tradier import TradierBroker

        http = TradierHTTP(
            base_url="http://127.0.0.1:9/v1/",
            token="test-token",
            timeout=timeout,
            max_retries=max_retries,
            transport=self.transport(),
            sleep=lambda s: None,
            budget=budget,
        )
        return TradierBroker(http=http, account_id=self.account, sleep=lambda s: None, **broker)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            if request.headers.get("authorization", "") != "Bearer test-token":
                return httpx.Response(401, text="Invalid Access Token")
            self._apply_pending_rejects()
            klass = endpoint_class(request.method, request.url.path)
            allowed, headers = self._rate(klass)
            if not allowed:
                self.throttled[klass] += 1
                return httpx.Response(429, text="Rate limit exceeded", headers=headers)
            self.served[klass] += 1
            response = self._route(request)
            response.headers.update(headers)
            return response

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        prefix = f"/v1/accounts/{self.account}"
        if path == "/v1/accounts/events/session" and request.method == "POST":
            return self._session()
        if path == "/v1/user/profile":
            body = fixture("get_user_profile.json")
            accounts = body["profile"]["account"]
            first = accounts[0] if isinstance(accounts, list) else accounts
            first["account_number"] = self.account
            return httpx.Response(200, json=body)
        if path == f"{prefix}/orders" and request.method == "POST":
            return self._create(request)
        if path == f"{prefix}/orders" and request.method == "GET":
            page = int(request.url.params.get("page", "1"))
            rows = list(self.orders.values()) if page == 1 else []
            if not rows:
                return httpx.Response(200, json={"orders": "null"})
            body = {"orders": {"order": rows[0] if len(rows) == 1 else rows}}
            return httpx.Response(200, json=copy.deepcopy(body))
        match = re.fullmatch(rf"{prefix}/orders/(\d+)", path)
        if match:
            return self._one(request, int(match[1]))
        if path == f"{prefix}/positions":
            rows = [p for p in self.positions.values() if p["quantity"]]
            if not rows:
                return httpx.Response(200, json={"positions": "null"})
            return httpx.Response(
                200, json={"positions": {"position": rows[0] if len(rows) == 1 else rows}}
            )
        if path == f"{prefix}/balances":
            if self.cash_start is not None:
                return httpx.Response(200, json=self._tracked_balances())
            return httpx.Response(200, json=fixture(self.balances_fixture))
        if path == "/v1/markets/quotes":
            symbols = [s.upper() for s in request.url.params.get("symbols", "").split(",") if s]
            rows = [self.quotes[s] for s in symbols if s in self.quotes]
            if not rows:
                return httpx.Response(200, json=fixture("get_quotes_single.json"))
            return httpx.Response(
                200, json={"quotes": {"quote": rows[0] if len(rows) == 1 else rows}}
            )
        return httpx.Response(404, text="not found")

    def _tracked_balances(self) -> dict:
        """Balances of an account that started with `cash_start` and only traded here: cash
        after every fill, equity with positions at the last print, buying power = cash."""
        cash = round(self.cash_start + self.cash_flow, 6)
        held = sum(
            p["quantity"] * self.quotes.get(p["symbol"], {}).get("last", 0.0)
            for p in self.positions.values()
        )
        return {
            "balances": {
                "account_type": "margin",
                "total_cash": cash,
                "total_equity": round(cash + held, 6),
                "open_pl": 0.0,
                "margin": {"stock_buying_power": cash},
            }
        }

    def _one(self, request: httpx.Request, order_id: int) -> httpx.Response:
        order = self.orders.get(order_id)
        if order is None and request.method == "PUT":
            try:  # a leg of an OCO/OTOCO is modified by its own id ("Modify an order")
                order, _ = self._find(order_id)
            except KeyError:
                order = None
        if order is None:
            return httpx.Response(404, json={"errors": {"error": "Order not found"}})
        if request.method == "GET":
            return httpx.Response(200, json={"order": copy.deepcopy(order)})
        if request.method == "DELETE":
            if order["status"] in DONE:
                return httpx.Response(
                    400, json={"errors": {"error": f"Order is already {order['status']}"}}
                )
            for leg in order.get("leg", []):
                if leg["status"] not in DONE:
                    self._set_status(leg, "canceled")
            self._set_status(order, "canceled")
            body = fixture("cancel_order.json")
            body["order"]["id"] = order["id"]
            return httpx.Response(200, json=body)
        if request.method == "PUT":
            form = self._form(request)
            if order["status"] in DONE:
                return httpx.Response(
                    400, json={"errors": {"error": f"Order is already {order['status']}"}}
                )
            for key in ("type", "price", "stop", "duration"):
                if key in form:
                    order["stop_price" if key == "stop" else key] = (
                        float(form[key]) if key in ("price", "stop") else form[key]
                    )
            self._emit(order)
            body = fixture("modify_order.json")
            body["order"]["id"] = order["id"]
            return httpx.Response(200, json=body)
        return httpx.Response(405, text="method not allowed")

    def _session(self) -> httpx.Response:
        now = time.time()
        # one session at a time: a new one replaces the old
        self.sessions = {uuid.uuid4().hex.upper()[:27]: now + SESSION_TTL_SEC}
        sid = next(iter(self.sessions))
        body = fixture("get_streaming_account_session.json")
        body["stream"]["sessionid"] = sid
        if self._ws_server is not None:
            body["stream"]["url"] = self.ws_url
        return httpx.Response(200, json=body)

    @staticmethod
    def _form(request: httpx.Request) -> dict[str, str]:
        content_type = request.headers.get("content-type", "")
        assert content_type.startswith("application/x-www-form-urlencoded"), content_type
        parsed = parse_qs(request.content.decode(), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def _error(self, message: str) -> httpx.Response:
        self.rejections.append(message)
        return httpx.Response(400, json={"errors": {"error": [message]}})

    # --- Tradier's documented validation -----------------------------------------------------
    def _validate(self, form: dict[str, str]) -> str | None:
        cls = form.get("class")
        if cls not in ("equity", "option", "multileg", "combo", "oto", "oco", "otoco"):
            return f"Invalid class {cls!r}"
        if form.get("duration") not in ("day", "gtc", "pre", "post"):
            return "duration is required: one of day, gtc, pre, post"
        tag = form.get("tag")
        if tag is not None and not TAG_RE.match(tag):
            return "Invalid tag: letters, numbers and - only, at most 255"
        if cls == "equity":
            return self._validate_leg(form, "", allowed=("market", *NOT_MARKET))
        count = {"oto": 2, "oco": 2, "otoco": 3}.get(cls)
        if count is None:
            return f"class {cls} is not simulated"
        if f"symbol[{count}]" in form:
            return f"{cls} takes exactly {count} legs"
        for index in range(count):
            allowed = NOT_MARKET
            if cls == "oto" and index == 1:
                allowed = ("market", *NOT_MARKET)
            problem = self._validate_leg(form, f"[{index}]", allowed=allowed)
            if problem:
                return problem
        pair = (0, 1) if cls == "oco" else (1, 2) if cls == "otoco" else None
        if pair:
            a, b = pair
            if form[f"symbol[{a}]"] != form[f"symbol[{b}]"]:
                return f"legs {a} and {b} must be the same symbol"
            if form[f"type[{a}]"] == form[f"type[{b}]"]:
                return f"legs {a} and {b} must be different types"
        return None

    @staticmethod
    def _validate_leg(form: dict[str, str], suffix: str, *, allowed) -> str | None:
        for field in ("symbol", "side", "quantity", "type"):
            if not form.get(f"{field}{suffix}"):
                return f"{field}{suffix} is required"
        if form[f"side{suffix}"] not in ("buy", "sell", "sell_short", "buy_to_cover"):
            return f"Invalid side{suffix}"
        try:
            quantity = Decimal(form[f"quantity{suffix}"])
        except Exception:
            return f"quantity{suffix} must be a number"
        if quantity <= 0 or quantity != quantity.to_integral_value():
            return f"quantity{suffix} must be a positive whole number"
        kind = form[f"type{suffix}"]
        if kind not in ("market", *NOT_MARKET):
            return f"Invalid type{suffix}"
        if kind not in allowed:
            return f"type{suffix} must be one of {', '.join(allowed)} (market is not allowed here)"
        if kind in ("limit", "stop_limit") and not form.get(f"price{suffix}"):
            return f"price{suffix} is required for {kind}"
        if kind in ("stop", "stop_limit") and not form.get(f"stop{suffix}"):
            return f"stop{suffix} is required for {kind}"
        return None

    def _node(self, form: dict, suffix: str, order_id: int, parent_id: int | None, cls: str):
        qty = float(form[f"quantity{suffix}"])
        now = _iso(self.clock())
        node = {
            "id": order_id,
            "type": form[f"type{suffix}"],
            "symbol": form[f"symbol{suffix}"],
            "side": form[f"side{suffix}"],
            "quantity": qty,
            "status": "open",
            "duration": form.get("duration"),
            "price": float(form[f"price{suffix}"]) if form.get(f"price{suffix}") else None,
            "stop_price": float(form[f"stop{suffix}"]) if form.get(f"stop{suffix}") else None,
            "avg_fill_price": 0.0,
            "exec_quantity": 0.0,
            "last_fill_price": 0.0,
            "last_fill_quantity": 0.0,
            "remaining_quantity": qty,
            "create_date": now,
            "transaction_date": now,
            "class": cls,
        }
        if parent_id is not None:
            node["parent_id"] = parent_id
        return node

    def _create(self, request: httpx.Request) -> httpx.Response:
        self.post_attempts += 1
        fault = self.faults.pop(0) if self.faults else None
        if fault == "429":
            return httpx.Response(429, text="Rate limit exceeded", headers={"Retry-After": "0"})
        if fault in ("500", "502", "503"):
            return httpx.Response(int(fault), text="Internal error")
        if fault == "timeout_before":
            raise httpx.ConnectTimeout("connect timed out", request=request)
        form = self._form(request)
        problem = self._validate(form)
        if problem:
            return self._error(problem)
        order_id = self.next_id
        self.next_id += 1
        cls = form["class"]
        if cls == "equity":
            order = self._node(form, "", order_id, None, "equity")
        else:
            order = self._node(form, "[0]", order_id, None, cls)
            legs = []
            index = 0
            while f"symbol[{index}]" in form:
                leg = self._node(form, f"[{index}]", order_id * 10 + index, order_id, "equity")
                leg["tag"] = form.get("tag")
                legs.append(leg)
                index += 1
            order["leg"] = legs
        order["tag"] = form.get("tag")
        self.orders[order_id] = order
        self.created_wall[order_id] = time.time()
        if order["tag"]:
            self.submissions[order["tag"]] += 1
        self._emit(order)
        for leg in order.get("leg", []):
            self._emit(leg)
        if self._reject_next:
            self.pending_rejects.append((order_id, self._reject_next.pop(0)))
        else:
            if self.match_on_create:
                self._match(order["symbol"])  # a marketable order fills on the current touch
        if fault == "timeout_after_accept":
            raise httpx.ReadTimeout("read timed out", request=request)
        if fault == "500_after_accept":
            return httpx.Response(500, text="Internal error")
        body = fixture("buy_stock_market_order.json")
        body["order"]["id"] = order_id
        return httpx.Response(200, json=body)

    # --- real HTTP ----------------------------------------------------------------------------
    def serve_http(self) -> str:
        """Serve the same handler on 127.0.0.1 (random port); returns the base URL (…/v1/)."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                req = httpx.Request(
                    self.command,
                    f"http://127.0.0.1{self.path}",
                    headers=dict(self.headers),
                    content=body,
                )
                try:
                    resp = fake.handle(req)
                except httpx.TimeoutException:
                    self.close_connection = True
                    return
                data = resp.content
                self.send_response(resp.status_code)
                for key, value in resp.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *args):
                pass

        self._http_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._http_server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._http_server.server_address[1]}/v1/"

    # --- the account event websocket ----------------------------------------------------------
    def start_stream(self) -> str:
        """Run the websocket server in a thread; returns its URL (…/v1/accounts/events)."""
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._ws_start())
            ready.set()
            self._loop.run_forever()

        self._ws_thread = threading.Thread(target=run, daemon=True)
        self._ws_thread.start()
        ready.wait(5)
        return self.ws_url

    async def _ws_start(self) -> None:
        import websockets

        self._ws_server = await websockets.serve(self._ws_handler, "127.0.0.1", 0)
        port = next(iter(self._ws_server.sockets)).getsockname()[1]
        self.ws_url = f"ws://127.0.0.1:{port}/v1/accounts/events"
        self._heartbeat_task = asyncio.ensure_future(self._heartbeats())

    async def _ws_handler(self, websocket, *args) -> None:
        try:
            raw = await asyncio.wait_for(websocket.recv(), timeout=10)
            payload = json.loads(raw)
        except Exception:  # noqa: BLE001 - a bad first frame closes the connection
            await websocket.close(code=1008, reason="bad subscription")
            return
        sid = payload.get("sessionid")
        if payload.get("events") != ["order"] or sid not in self.sessions:
            self.stream_refusals.append(str(sid))
            await websocket.send(json.dumps({"error": "invalid session"}))
            await websocket.close(code=1008, reason="invalid session")
            return
        if self.sessions[sid] < time.time():
            self.stream_refusals.append(str(sid))
            await websocket.close(code=1008, reason="session expired")
            return
        self.stream_connections += 1
        self._ws_clients.add(websocket)
        try:
            await websocket.wait_closed()
        finally:
            self._ws_clients.discard(websocket)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_sec)
            beat = {
                "event": "heartbeat",
                "status": "active",
                "timestamp": datetime.now(UTC).isoformat(),
            }
            await self._send_all(beat)

    async def _send_all(self, message: dict) -> None:
        text = json.dumps(message)
        for ws in list(self._ws_clients):
            try:
                await ws.send(text)
            except Exception:  # noqa: BLE001 - a closing client
                self._ws_clients.discard(ws)

    def _broadcast(self, event: dict) -> None:
        if self._loop is None or not self._ws_clients or self.mute_stream:
            return
        self.delivered.append(event)
        asyncio.run_coroutine_threadsafe(self._send_all(event), self._loop).result(5)

    @property
    def stream_clients(self) -> int:
        return len(self._ws_clients)

    def drop_stream(self) -> None:
        """Cut every websocket client (the server keeps listening)."""
        if self._loop is None:
            return

        async def cut():
            for ws in list(self._ws_clients):
                await ws.close(code=1011, reason="dropped by test")
            self._ws_clients.clear()

        asyncio.run_coroutine_threadsafe(cut(), self._loop).result(5)

    def close(self) -> None:
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
        if self._loop is not None:

            async def stop():
                self._heartbeat_task.cancel()
                self._ws_server.close()
                for ws in list(self._ws_clients):
                    await ws.close()

            try:
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                if self._ws_thread is not None:
                    self._ws_thread.join(5)
