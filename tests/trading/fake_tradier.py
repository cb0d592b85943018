"""A local fake of Tradier's brokerage API for tests (served through httpx.MockTransport).

It answers in Tradier's real shapes (tests/fixtures/tradier/*.json, copied from the shared
fixtures), validates requests the way Tradier documents them (form-encoded, required fields
per order type, OTOCO indexed legs, tag characters), records every submission per tag, and
injects faults on demand: 429, 5xx, a timeout before the order is placed, and a timeout AFTER
it was placed (the unknown-outcome case).
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs

import httpx

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tradier"
TAG_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


class FakeTradier:
    def __init__(self, account: str = "VA00000000") -> None:
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

    # --- test helpers ---------------------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def fill(self, order_id: int, qty: int | None = None, price: str = "100.00") -> None:
        order = self.orders[int(order_id)]
        qty = int(order["quantity"]) if qty is None else qty
        order["exec_quantity"] = float(qty)
        order["avg_fill_price"] = float(price)
        order["last_fill_price"] = float(price)
        order["remaining_quantity"] = float(order["quantity"]) - qty
        order["status"] = "filled" if qty >= order["quantity"] else "partially_filled"
        sign = 1 if order["side"].startswith("buy") else -1
        pos = self.positions.setdefault(
            order["symbol"], {"symbol": order["symbol"], "quantity": 0.0, "cost_basis": 0.0}
        )
        pos["quantity"] += sign * qty
        pos["cost_basis"] += sign * qty * float(price)

    def fill_leg(self, order_id: int, index: int, price: str) -> None:
        """Fill one leg of a bracket; like Tradier, a filled exit leg cancels its sibling."""
        order = self.orders[int(order_id)]
        leg = order["leg"][index]
        leg["exec_quantity"] = leg["quantity"]
        leg["avg_fill_price"] = float(price)
        leg["status"] = "filled"
        sign = 1 if leg["side"].startswith("buy") else -1
        pos = self.positions.setdefault(
            leg["symbol"], {"symbol": leg["symbol"], "quantity": 0.0, "cost_basis": 0.0}
        )
        pos["quantity"] += sign * leg["quantity"]
        pos["cost_basis"] += sign * leg["quantity"] * float(price)
        if index in (1, 2):
            other = order["leg"][3 - index]
            if other["status"] == "open":
                other["status"] = "canceled"
            order["status"] = "filled"

    def by_tag(self, tag: str) -> list[dict]:
        return [o for o in self.orders.values() if o.get("tag") == tag]

    # --- HTTP -------------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization", "") != "Bearer test-token":
            return httpx.Response(401, text="Invalid Access Token")
        path = request.url.path
        prefix = f"/v1/accounts/{self.account}"
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
            order = self.orders.get(int(match[1]))
            if order is None:
                return httpx.Response(404, json={"errors": {"error": "Order not found"}})
            if request.method == "GET":
                return httpx.Response(200, json={"order": copy.deepcopy(order)})
            if request.method == "DELETE":
                if order["status"] in ("filled", "canceled", "expired", "rejected"):
                    return httpx.Response(
                        400, json={"errors": {"error": f"Order is already {order['status']}"}}
                    )
                order["status"] = "canceled"
                for leg in order.get("leg", []):
                    if leg["status"] == "open":
                        leg["status"] = "canceled"
                body = fixture("cancel_order.json")
                body["order"]["id"] = order["id"]
                return httpx.Response(200, json=body)
            if request.method == "PUT":
                form = self._form(request)
                for key in ("type", "price", "stop", "duration"):
                    if key in form:
                        order["stop_price" if key == "stop" else key] = (
                            float(form[key]) if key in ("price", "stop") else form[key]
                        )
                body = fixture("modify_order.json")
                body["order"]["id"] = order["id"]
                return httpx.Response(200, json=body)
        if path == f"{prefix}/positions":
            rows = [p for p in self.positions.values() if p["quantity"]]
            if not rows:
                return httpx.Response(200, json={"positions": "null"})
            return httpx.Response(
                200, json={"positions": {"position": rows[0] if len(rows) == 1 else rows}}
            )
        if path == f"{prefix}/balances":
            return httpx.Response(200, json=fixture(self.balances_fixture))
        if path == "/v1/markets/quotes":
            return httpx.Response(200, json=fixture("get_quotes_single.json"))
        return httpx.Response(404, text="not found")

    @staticmethod
    def _form(request: httpx.Request) -> dict[str, str]:
        content_type = request.headers.get("content-type", "")
        assert content_type.startswith("application/x-www-form-urlencoded"), content_type
        parsed = parse_qs(request.content.decode(), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def _error(self, message: str) -> httpx.Response:
        self.rejections.append(message)
        return httpx.Response(400, json={"errors": {"error": [message]}})

    def _validate(self, form: dict[str, str]) -> str | None:
        cls = form.get("class")
        if cls not in ("equity", "option", "multileg", "combo", "oto", "oco", "otoco"):
            return f"Invalid class {cls!r}"
        if not form.get("duration"):
            return "duration is required"
        tag = form.get("tag")
        if tag is not None and not TAG_RE.match(tag):
            return "Invalid tag: letters, numbers and - only"
        if cls == "equity":
            return self._validate_leg(form, "", allow_market=True)
        count = {"oto": 2, "oco": 2, "otoco": 3}[cls] if cls in ("oto", "oco", "otoco") else None
        if count is None:
            return None
        for index in range(count):
            problem = self._validate_leg(form, f"[{index}]", allow_market=index == 0)
            if problem:
                return problem
        if f"symbol[{count}]" in form:
            return f"{cls} takes exactly {count} legs"
        if cls == "otoco":
            if form["symbol[1]"] != form["symbol[2]"]:
                return "legs 1 and 2 must be the same symbol"
            if form["type[1]"] == form["type[2]"]:
                return "legs 1 and 2 must be different types"
        return None

    @staticmethod
    def _validate_leg(form: dict[str, str], suffix: str, *, allow_market: bool) -> str | None:
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
        if kind not in ("market", "limit", "stop", "stop_limit"):
            return f"Invalid type{suffix}"
        if kind == "market" and not allow_market:
            return f"type{suffix}: only the first leg may be market"
        if kind in ("limit", "stop_limit") and not form.get(f"price{suffix}"):
            return f"price{suffix} is required for {kind}"
        if kind in ("stop", "stop_limit") and not form.get(f"stop{suffix}"):
            return f"stop{suffix} is required for {kind}"
        return None

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
        order = {
            "id": order_id,
            "type": form.get("type", form.get("type[0]")),
            "symbol": form.get("symbol", form.get("symbol[0]")),
            "side": form.get("side", form.get("side[0]")),
            "quantity": float(form.get("quantity", form.get("quantity[0]"))),
            "status": "open",
            "duration": form["duration"],
            "price": float(form["price"]) if form.get("price") else None,
            "stop_price": float(form["stop"]) if form.get("stop") else None,
            "avg_fill_price": 0.0,
            "exec_quantity": 0.0,
            "last_fill_price": 0.0,
            "last_fill_quantity": 0.0,
            "remaining_quantity": float(form.get("quantity", form.get("quantity[0]"))),
            "create_date": "2026-11-25T14:31:00.000Z",
            "transaction_date": "2026-11-25T14:31:00.000Z",
            "class": cls,
            "tag": form.get("tag"),
        }
        if cls in ("oco", "otoco"):
            legs = []
            index = 0
            while f"symbol[{index}]" in form:
                legs.append(
                    {
                        "id": order_id * 10 + index,
                        "type": form[f"type[{index}]"],
                        "symbol": form[f"symbol[{index}]"],
                        "side": form[f"side[{index}]"],
                        "quantity": float(form[f"quantity[{index}]"]),
                        "status": "open",
                        "price": float(form[f"price[{index}]"])
                        if form.get(f"price[{index}]")
                        else None,
                        "stop_price": float(form[f"stop[{index}]"])
                        if form.get(f"stop[{index}]")
                        else None,
                        "exec_quantity": 0.0,
                        "class": "equity",
                    }
                )
                index += 1
            order["leg"] = legs
        self.orders[order_id] = order
        if order["tag"]:
            self.submissions[order["tag"]] += 1
        if fault == "timeout_after_accept":
            raise httpx.ReadTimeout("read timed out", request=request)
        if fault == "500_after_accept":
            return httpx.Response(500, text="Internal error")
        body = fixture("buy_stock_market_order.json")
        body["order"]["id"] = order_id
        return httpx.Response(200, json=body)
