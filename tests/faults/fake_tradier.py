"""A fake Tradier brokerage on 127.0.0.1: a real threaded HTTP server (reachable by other
processes, e.g. Celery workers) that speaks Tradier's order API shapes and injects faults.

Shapes come from the recorded payloads in tests/fixtures/tradier (place/cancel/modify answers,
an order record, positions, balances): one object or a list under the same key, "null" for
none. Requests are validated as Tradier documents them (form-encoded, tag characters, OTOCO
indexed legs) and answered 400 `{"errors": {"error": [...]}}` when invalid.

Faults (rate `fault_rate`, seeded): 429 (nothing done), 5xx before acting, 5xx AFTER acting,
a timeout before acting, a timeout after acting, answer-then-drop (act, then close the
socket without an answer), and — with `late_landing_sec` set — a late landing: the client's
POST times out and the order is booked `late_landing_sec` after the request arrived, i.e.
after the client's timeout and its first look-up of the tag (the unknown-outcome window that
a tag look-up alone cannot close). Every order the broker accepted is recorded with its tag,
so a test can count lost and doubled orders.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tradier"
TAG_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")
SIDES = {"buy", "buy_to_cover", "sell", "sell_short"}
TYPES = {"market", "limit", "stop", "stop_limit"}
DURATIONS = {"day", "gtc", "pre", "post"}
CLASSES = {"equity", "oco", "oto", "otoco"}

# Fault kinds: which ones act on the request before failing.
FAULTS_BEFORE = ("429", "500", "502", "503", "timeout_before")
FAULTS_AFTER = ("500_after", "504_after", "timeout_after", "drop_after")
LATE_LANDING = "land_late"  # chosen only when late_landing_sec > 0, only for order POSTs
ALL_FAULTS = FAULTS_BEFORE + FAULTS_AFTER + (LATE_LANDING,)


def _fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Submission:
    tag: str
    accepted: bool
    order_id: int | None
    fault: str = ""
    error: str = ""


@dataclass
class FakeTradierState:
    account: str = "VA00000000"
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ALL_FAULTS
    fault_on: frozenset[str] = frozenset({"GET", "POST", "PUT", "DELETE"})
    delay_sec: float = 0.5  # how long a "timeout" sleeps (set above the client's timeout)
    answer_delay_sec: float = 0.0  # an order POST is booked, then answered this much later
    late_landing_sec: float = 0.0  # > 0 enables `land_late`: booked this long after arrival
    seed: int = 7
    prices: dict[str, Decimal] = field(default_factory=dict)
    fill_market: bool = True
    quotes: bool = True  # False: no quote for any symbol (entries go in at market)
    orders: dict[int, dict] = field(default_factory=dict)
    submissions: list[Submission] = field(default_factory=list)
    faults: Counter = field(default_factory=Counter)
    requests: Counter = field(default_factory=Counter)
    next_id: int = 257459
    late_landings: int = 0
    cash: Decimal = Decimal("100000")
    buying_power: Decimal | None = None  # None: the recorded margin account's (12,727.72)
    quote_delay_sec: float = 0.0  # a quote answers this late (network and Tradier latency)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(self.seed)

    # --- queries used by tests ---------------------------------------------------------------
    def accepted_by_tag(self) -> Counter:
        with self.lock:
            return Counter(s.tag for s in self.submissions if s.accepted)

    def orders_with_tag(self, tag: str) -> list[dict]:
        with self.lock:
            return [o for o in self.orders.values() if o.get("tag") == tag]

    def positions(self) -> dict[str, int]:
        """Net filled quantity per symbol (legs included)."""
        net: Counter = Counter()
        with self.lock:
            for order in self.orders.values():
                for leg in order.get("leg", []) or [order]:
                    qty = int(leg.get("exec_quantity") or 0)
                    sign = 1 if leg["side"] in ("buy", "buy_to_cover") else -1
                    net[leg["symbol"]] += sign * qty
        return {k: v for k, v in net.items() if v}

    # --- fault choice ------------------------------------------------------------------------
    def pick_fault(self, method: str) -> str:
        with self.lock:
            if method not in self.fault_on or self.rng.random() >= self.fault_rate:
                return ""
            kinds = [k for k in self.fault_kinds if k != LATE_LANDING or self.late_landing_sec]
            fault = self.rng.choice(kinds)
            if fault == LATE_LANDING and method != "POST":
                fault = "timeout_after"
            if method == "GET" and fault in FAULTS_AFTER:  # a read has nothing to "act" on
                fault = "timeout_before" if fault == "timeout_after" else "503"
            self.faults[fault] += 1
            return fault

    # --- the book ----------------------------------------------------------------------------
    def price_of(self, symbol: str) -> Decimal:
        return self.prices.get(symbol, Decimal("100.00"))

    def _order_record(
        self,
        oid: int,
        *,
        symbol,
        side,
        qty,
        otype,
        duration,
        price,
        stop,
        tag,
        oclass="equity",
    ):
        record = copy.deepcopy(_fixture("get_order.json")["order"])
        record.pop("option_symbol", None)
        now = _now_iso()
        record.update(
            {
                "id": oid,
                "type": otype,
                "symbol": symbol,
                "side": side,
                "quantity": float(qty),
                "status": "open",
                "duration": duration,
                "avg_fill_price": 0.0,
                "exec_quantity": 0.0,
                "last_fill_price": 0.0,
                "last_fill_quantity": 0.0,
                "remaining_quantity": float(qty),
                "create_date": now,
                "transaction_date": now,
                "class": oclass,
            }
        )
        if price is not None:
            record["price"] = float(price)
        if stop is not None:
            record["stop_price"] = float(stop)
        if tag:
            record["tag"] = tag
        return record

    def _fill(self, record: dict, price: Decimal) -> None:
        qty = record["quantity"]
        record.update(
            {
                "status": "filled",
                "avg_fill_price": float(price),
                "exec_quantity": qty,
                "last_fill_price": float(price),
                "last_fill_quantity": qty,
                "remaining_quantity": 0.0,
                "transaction_date": _now_iso(),
            }
        )

    def _maybe_fill(self, record: dict) -> None:
        last = self.price_of(record["symbol"])
        buy = record["side"] in ("buy", "buy_to_cover")
        kind = record["type"]
        if kind == "market" and self.fill_market:
            self._fill(record, last)
        elif kind == "limit":
            limit = Decimal(str(record["price"]))
            if (buy and last <= limit) or (not buy and last >= limit):
                self._fill(record, limit)

    # --- the market moves ----------------------------------------------------------------------
    def move_price(self, symbol: str, price: Decimal) -> int:
        """The last price of `symbol` moves: resting limits and stops it crosses fill (at their
        price), an OCO pair cancels the sibling of a filled leg, an OTO/OTOCO's exit legs open
        once its entry fills. Returns the number of orders or legs filled."""
        with self.lock:
            self.prices[symbol] = price
            filled = 0
            for record in self.orders.values():
                legs = record.get("leg") or []
                if not legs:
                    if record["symbol"] == symbol and record["status"] == "open":
                        filled += self._cross(record, price)
                    continue
                if legs[0]["symbol"] != symbol:
                    continue
                oclass = record.get("class", "")
                exits = legs if oclass == "oco" else legs[1:]
                if oclass in ("oto", "otoco"):
                    if legs[0]["status"] == "open":
                        filled += self._cross(legs[0], price)
                    if legs[0]["status"] == "filled":
                        for leg in exits:
                            if leg["status"] == "pending":
                                leg["status"] = "open"
                for leg in exits:
                    if leg["status"] == "open" and self._cross(leg, price):
                        filled += 1
                        if oclass != "oto":  # one leg of an OCO pair done: the other goes
                            for other in exits:
                                if other is not leg and other["status"] in ("open", "pending"):
                                    other["status"] = "canceled"
                        break
                if all(leg["status"] in ("filled", "canceled", "expired") for leg in legs):
                    record["status"] = "filled"
            return filled

    def _cross(self, record: dict, last: Decimal) -> int:
        buy = record["side"] in ("buy", "buy_to_cover")
        kind = record["type"]
        if kind == "limit":
            limit = Decimal(str(record["price"]))
            if (buy and last <= limit) or (not buy and last >= limit):
                self._fill(record, limit)
                return 1
        elif kind in ("stop", "stop_limit"):
            stop = Decimal(str(record["stop_price"]))
            if (buy and last >= stop) or (not buy and last <= stop):
                self._fill(record, stop)
                return 1
        return 0

    def place(self, form: dict[str, str]) -> tuple[int, dict]:
        """Validate and book an order; returns (status, body)."""
        error = validate_form(form)
        tag = form.get("tag", "")
        with self.lock:
            if error:
                self.submissions.append(Submission(tag, False, None, error=error))
                return 400, {"errors": {"error": [error]}}
            oid = self.next_id
            self.next_id += 1
            oclass = form["class"]
            if oclass in ("oco", "oto", "otoco"):
                legs = []
                for i in range(3 if oclass == "otoco" else 2):
                    legs.append(
                        self._order_record(
                            oid + 1 + i,
                            symbol=form[f"symbol[{i}]"],
                            side=form[f"side[{i}]"],
                            qty=int(form[f"quantity[{i}]"]),
                            otype=form[f"type[{i}]"],
                            duration=form.get("duration", "day"),
                            price=form.get(f"price[{i}]"),
                            stop=form.get(f"stop[{i}]"),
                            tag="",  # Tradier reports the tag on the order, not its legs
                        )
                    )
                self.next_id += len(legs)
                record = self._order_record(
                    oid,
                    symbol=legs[0]["symbol"],
                    side=legs[0]["side"],
                    qty=int(legs[0]["quantity"]),
                    otype=legs[0]["type"],
                    duration=form.get("duration", "day"),
                    price=None,
                    stop=None,
                    tag=tag,
                    oclass=oclass,
                )
                record["num_legs"] = len(legs)
                record["leg"] = legs
                if oclass == "otoco":
                    self._maybe_fill(legs[0])
                    waiting = legs[0]["status"] != "filled"
                    for leg in legs[1:]:
                        leg["status"] = "pending" if waiting else "open"
                    record["status"] = "open"
            else:
                record = self._order_record(
                    oid,
                    symbol=form["symbol"],
                    side=form["side"],
                    qty=int(form["quantity"]),
                    otype=form["type"],
                    duration=form.get("duration", "day"),
                    price=form.get("price"),
                    stop=form.get("stop"),
                    tag=tag,
                )
                self._maybe_fill(record)
            self.orders[oid] = record
            self.submissions.append(Submission(tag, True, oid))
            answer = copy.deepcopy(_fixture("buy_stock_market_order.json"))
            answer["order"]["id"] = oid
            return 200, answer

    def cancel(self, oid: int) -> tuple[int, dict]:
        with self.lock:
            record = self.orders.get(oid)
            if record is None:
                return 400, {"errors": {"error": [f"Order {oid} not found"]}}
            if record["status"] in ("filled", "canceled", "rejected", "expired"):
                return 400, {"errors": {"error": [f"Order {oid} is already {record['status']}"]}}
            record["status"] = "canceled"
            for leg in record.get("leg", []):
                if leg["status"] not in ("filled",):
                    leg["status"] = "canceled"
            answer = copy.deepcopy(_fixture("cancel_order.json"))
            answer["order"]["id"] = oid
            return 200, answer

    def modify(self, oid: int, form: dict[str, str]) -> tuple[int, dict]:
        with self.lock:
            record = self.orders.get(oid)
            leg = record is None  # an OCO/OTOCO leg is modified by its own id
            if leg:
                legs = (x for r in self.orders.values() for x in r.get("leg", []))
                record = next((x for x in legs if x["id"] == oid), None)
            if record is None:
                return 400, {"errors": {"error": [f"Order {oid} not found"]}}
            if "price" in form:
                record["price"] = float(form["price"])
            if "stop" in form:
                record["stop_price"] = float(form["stop"])
            if "type" in form:
                record["type"] = form["type"]
            if not leg and record["status"] in ("open", "partially_filled"):
                self._maybe_fill(record)  # a limit turned market (or repriced) may trade now
            answer = copy.deepcopy(_fixture("modify_order.json"))
            answer["order"]["id"] = oid
            return 200, answer

    def find_order(self, oid: int) -> dict | None:
        with self.lock:
            if oid in self.orders:
                return self.orders[oid]
            for record in self.orders.values():
                for leg in record.get("leg", []):
                    if leg["id"] == oid:
                        return leg
        return None


def validate_form(form: dict[str, str]) -> str:
    """Tradier's documented order validation; '' when valid, else the error text."""
    oclass = form.get("class", "")
    if oclass not in CLASSES:
        return f"Invalid class: {oclass!r}"
    tag = form.get("tag")
    if tag is not None and not TAG_RE.match(tag):
        return "Tag may contain only letters, digits and '-' (max 255)"
    duration = form.get("duration", "day")
    if duration not in DURATIONS:
        return f"Invalid duration: {duration!r}"
    if oclass == "equity":
        return _validate_leg(form, "", allow_market=True)
    count = 3 if oclass == "otoco" else 2
    for i in range(count):
        error = _validate_leg(form, f"[{i}]", allow_market=(i == 0 and oclass != "oco"))
        if error:
            return f"leg {i}: {error}"
    if f"symbol[{count}]" in form:
        return f"{oclass} takes exactly {count} legs"
    if oclass == "otoco":
        if form["symbol[1]"] != form["symbol[2]"]:
            return "OTOCO legs 1 and 2 must be for the same symbol"
        if form["type[1]"] == form["type[2]"]:
            return "OTOCO legs 1 and 2 must have different types"
    return ""


def _validate_leg(form: dict[str, str], suffix: str, *, allow_market: bool) -> str:
    symbol = form.get(f"symbol{suffix}", "")
    if not symbol:
        return "symbol is required"
    side = form.get(f"side{suffix}", "")
    if side not in SIDES:
        return f"Invalid side: {side!r}"
    try:
        qty = int(form.get(f"quantity{suffix}", ""))
    except ValueError:
        return "quantity must be an integer"
    if qty < 1:
        return "quantity must be >= 1"
    otype = form.get(f"type{suffix}", "")
    if otype not in TYPES:
        return f"Invalid type: {otype!r}"
    if otype == "market" and not allow_market:
        return "market is not allowed for this leg"
    for key, needed in (("price", ("limit", "stop_limit")), ("stop", ("stop", "stop_limit"))):
        if otype in needed:
            try:
                if Decimal(form.get(f"{key}{suffix}", "")) <= 0:
                    return f"{key} must be > 0"
            except Exception:
                return f"{key} is required for {otype}"
    return ""


def _collection(key: str, item: str, rows: list[dict]):
    """Tradier's shape: "null" for none, one object for one, a list for many."""
    if not rows:
        return {key: "null"}
    return {key: {item: rows[0] if len(rows) == 1 else rows}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: FakeTradierState

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        return

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return {"__json__": raw}
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def _send(self, status: int, body, headers: dict | None = None) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self, method: str) -> None:
        state = self.state
        url = urlparse(self.path)
        path = url.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        form = self._form() if method in ("POST", "PUT") else {}
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._send(401, b"Invalid Access Token")
            return
        state.requests[(method, _endpoint(path))] += 1
        fault = state.pick_fault(method)
        if fault in ("429",):
            self._send(429, {"fault": {"faultstring": "Rate limit exceeded"}})
            return
        if fault in ("500", "502", "503"):
            self._send(int(fault), b"Service Unavailable")
            return
        if fault == "timeout_before":
            time.sleep(state.delay_sec)
            self._drop()
            return
        if fault == LATE_LANDING:
            self._land_late(method, path, query, form)
            return
        status, body = self._route(method, path, query, form)
        if method == "POST" and state.answer_delay_sec:
            time.sleep(state.answer_delay_sec)  # widens "placed but not yet recorded"
        if status == 200 and fault and method in ("POST", "PUT", "DELETE"):
            with state.lock:  # the broker acted; the client will not learn it
                if method == "POST" and state.submissions:
                    state.submissions[-1].fault = fault
        if fault in ("500_after", "504_after"):
            self._send(int(fault[:3]), b"Gateway error")
            return
        if fault == "timeout_after":
            time.sleep(state.delay_sec)
            self._drop()
            return
        if fault == "drop_after":
            self._drop()
            return
        self._send(status, body)

    def _land_late(self, method: str, path: str, query: dict, form: dict) -> None:
        """The request is stuck on its way in: the client times out (no answer ever comes) and
        the broker acts on it `late_landing_sec` after it arrived."""
        state = self.state

        def land() -> None:
            status, body = self._route(method, path, query, form)
            oid = (body.get("order") or {}).get("id") if isinstance(body, dict) else None
            with state.lock:
                state.late_landings += 1
                for submission in state.submissions:
                    if status == 200 and submission.order_id == oid:
                        submission.fault = LATE_LANDING

        threading.Timer(state.late_landing_sec, land).start()
        time.sleep(state.delay_sec)  # longer than the client's timeout
        self._drop()

    def _route(self, method: str, path: str, query: dict, form: dict) -> tuple[int, dict]:
        state = self.state
        prefix = f"/v1/accounts/{state.account}"
        if path == "/v1/markets/quotes":
            if state.quote_delay_sec:
                time.sleep(state.quote_delay_sec)
            rows = []
            for sym in query.get("symbols", form.get("symbols", "")).split(","):
                if not sym or not state.quotes:
                    continue
                last = state.price_of(sym)
                rows.append(
                    {
                        "symbol": sym,
                        "type": "stock",
                        "last": float(last),
                        "bid": float(last - Decimal("0.01")),
                        "ask": float(last + Decimal("0.01")),
                    }
                )
            return 200, _collection("quotes", "quote", rows)
        if not path.startswith(prefix):
            return 404, {"errors": {"error": [f"unknown path {path}"]}}
        rest = path[len(prefix) :]
        if rest == "/orders" and method == "POST":
            return state.place(form)
        if rest == "/orders" and method == "GET":
            with state.lock:
                rows = [copy.deepcopy(o) for o in state.orders.values()]
            if query.get("includeTags", "true").lower() != "true":
                for row in rows:
                    row.pop("tag", None)
            return 200, _collection("orders", "order", rows)
        match = re.fullmatch(r"/orders/(\d+)", rest)
        if match:
            oid = int(match.group(1))
            if method == "GET":
                record = state.find_order(oid)
                if record is None:
                    return 404, {"errors": {"error": [f"Order {oid} not found"]}}
                return 200, {"order": copy.deepcopy(record)}
            if method == "DELETE":
                return state.cancel(oid)
            if method == "PUT":
                return state.modify(oid, form)
        if rest == "/positions" and method == "GET":
            rows = []
            for sym, qty in sorted(state.positions().items()):
                rows.append(
                    {
                        "cost_basis": float(state.price_of(sym) * qty),
                        "date_acquired": _now_iso(),
                        "id": abs(hash(sym)) % 1_000_000,
                        "quantity": float(qty),
                        "symbol": sym,
                    }
                )
            return 200, _collection("positions", "position", rows)
        if rest == "/balances" and method == "GET":
            body = copy.deepcopy(_fixture("get_balance_margin.json"))
            body["balances"]["account_number"] = state.account
            body["balances"]["total_cash"] = float(state.cash)
            body["balances"]["total_equity"] = float(state.cash)
            if state.buying_power is not None:
                body["balances"]["margin"]["stock_buying_power"] = float(state.buying_power)
            return 200, body
        return 404, {"errors": {"error": [f"unknown path {path}"]}}

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_PUT(self):  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")


def _endpoint(path: str) -> str:
    return re.sub(r"/\d+(?=/|$)", "/{id}", path.split("/v1/", 1)[-1])


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (timeout) closes its socket: expected here, not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeTradier:
    """Start with `with FakeTradier(fault_rate=0.3) as fake:`; `fake.base_url` ends in /v1/."""

    def __init__(self, **state_kwargs) -> None:
        self.state = FakeTradierState(**state_kwargs)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = _QuietServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1/"

    def start(self) -> FakeTradier:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeTradier:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
