"""The one check of an order's shape against Tradier's documented rules, run before every POST
(by the Tradier client and the paper broker alike), and the shaping of a market-entry bracket.

Sources (Tradier's own pages, which win over DESIGN.md): "Place an order" (equity), "Place an
OTO order", "Place an OCO order", "Place an OTOCO order":
- `class` is one of equity, oto, oco, otoco here (option/multileg/combo are not traded);
- `duration` one of day, gtc, pre, post; for OCO, and legs 1-2 of an OTOCO, one duration;
- `tag` at most 255 characters of letters, digits and `-` (we also require one: idempotency);
- `quantity` a whole number >= 1 for equities; `side` buy, buy_to_cover, sell, sell_short;
- `price` required for limit and stop_limit, `stop` for stop and stop_limit;
- OTO: the first order is limit, stop or stop_limit (never market); the second may be market;
- OCO: two legs, each limit, stop or stop_limit, of different types and the same symbol;
- OTOCO: three legs, each limit, stop or stop_limit; legs 1 and 2 the same symbol and of
  different types.
Our own rule on top (not Tradier's): the exit legs of a bracket sell what the entry buys.

Each violation raises `OrderShapeError` naming the rule (`rule` is a stable code the API
returns with HTTP 400), so a caller never parses the message.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from trading.brokers.base import BrokerRejected, Leg, OrderRequest, Quote

TAG_RE = re.compile(r"^[A-Za-z0-9-]+$")
TAG_MAX = 255
CLASSES = ("equity", "oto", "oco", "otoco")
DURATIONS = ("day", "gtc", "pre", "post")
SIDES = ("buy", "buy_to_cover", "sell", "sell_short")
TYPES = ("market", "limit", "stop", "stop_limit")
NOT_MARKET = ("limit", "stop", "stop_limit")
LEG_COUNT = {"oto": 2, "oco": 2, "otoco": 3}
BUY_SIDES = ("buy", "buy_to_cover")
CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")


class OrderShapeError(BrokerRejected):
    """The order breaks one of the documented shape rules: nothing was sent.

    `rule` is a stable code (e.g. `otoco_first_leg_market`), `field` the form field at fault.
    `code`/`http_status` follow the core's typed errors (views map them, never the text)."""

    code = "ORDER_SHAPE_INVALID"
    http_status = 400

    def __init__(self, rule: str, message: str, *, field: str = "") -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.field = field
        self.detail = message

    def as_dict(self) -> dict:
        return {"code": self.code, "rule": self.rule, "field": self.field, "detail": self.detail}


def validate(request: OrderRequest) -> None:
    """Raise OrderShapeError for the first rule `request` breaks; return None when valid."""
    if request.order_class not in CLASSES:
        raise OrderShapeError(
            "class_invalid", f"class {request.order_class!r} not one of {CLASSES}", field="class"
        )
    if request.duration not in DURATIONS:
        raise OrderShapeError(
            "duration_invalid",
            f"duration {request.duration!r} not one of {DURATIONS}",
            field="duration",
        )
    _check_tag(request.tag)
    if request.order_class == "equity":
        if request.legs:
            raise OrderShapeError("equity_has_legs", "an equity order has no legs", field="class")
        _check_leg(_as_leg(request), "", allowed=TYPES)
        return
    legs = request.legs
    expected = LEG_COUNT[request.order_class]
    if len(legs) != expected:
        raise OrderShapeError(
            f"{request.order_class}_leg_count",
            f"{request.order_class} takes exactly {expected} legs, got {len(legs)}",
            field="symbol[]",
        )
    if request.order_class == "oto":
        _check_leg(legs[0], "[0]", allowed=NOT_MARKET, rule="oto_first_leg_market")
        _check_leg(legs[1], "[1]", allowed=TYPES)
        return
    if request.order_class == "oco":
        for index, leg in enumerate(legs):
            _check_leg(leg, f"[{index}]", allowed=NOT_MARKET, rule="oco_leg_market")
        _check_pair(legs[0], legs[1], "oco", "[1]")
        return
    _check_leg(legs[0], "[0]", allowed=NOT_MARKET, rule="otoco_first_leg_market")
    for index in (1, 2):
        _check_leg(legs[index], f"[{index}]", allowed=NOT_MARKET, rule="otoco_exit_leg_market")
    _check_pair(legs[1], legs[2], "otoco", "[2]")
    entry_buys = legs[0].side in BUY_SIDES
    for index in (1, 2):
        if (legs[index].side in BUY_SIDES) == entry_buys:
            raise OrderShapeError(
                "bracket_exit_side",
                f"leg {index} ({legs[index].side}) must close what leg 0 ({legs[0].side}) opens",
                field=f"side[{index}]",
            )


def _as_leg(request: OrderRequest) -> Leg:
    return Leg(
        request.symbol, request.side, request.qty, request.order_type, request.price, request.stop
    )


def _check_tag(tag: str) -> None:
    if not tag:
        raise OrderShapeError("tag_missing", "every order carries its idempotency tag", field="tag")
    if len(tag) > TAG_MAX:
        raise OrderShapeError(
            "tag_too_long", f"tag is {len(tag)} characters, at most {TAG_MAX}", field="tag"
        )
    if not TAG_RE.match(tag):
        raise OrderShapeError(
            "tag_charset", f"tag {tag!r}: letters, digits and '-' only", field="tag"
        )


def _check_leg(leg: Leg, suffix: str, *, allowed: tuple[str, ...], rule: str = "") -> None:
    if not leg.symbol:
        raise OrderShapeError("symbol_missing", "symbol is required", field=f"symbol{suffix}")
    if leg.side not in SIDES:
        raise OrderShapeError(
            "side_invalid", f"side {leg.side!r} not one of {SIDES}", field=f"side{suffix}"
        )
    qty = leg.qty
    if isinstance(qty, bool) or not isinstance(qty, int | Decimal) or int(qty) != qty:
        raise OrderShapeError(
            "quantity_not_whole",
            f"quantity {qty!r} must be a whole number of shares",
            field=f"quantity{suffix}",
        )
    if int(qty) < 1:
        raise OrderShapeError(
            "quantity_not_positive", f"quantity {qty} must be >= 1", field=f"quantity{suffix}"
        )
    if leg.order_type not in TYPES:
        raise OrderShapeError(
            "type_invalid", f"type {leg.order_type!r} not one of {TYPES}", field=f"type{suffix}"
        )
    if leg.order_type not in allowed:
        raise OrderShapeError(
            rule or "type_not_allowed",
            f"type{suffix} {leg.order_type!r} not allowed here: one of {allowed}",
            field=f"type{suffix}",
        )
    if leg.order_type in ("limit", "stop_limit"):
        _check_price(leg.price, "price", suffix, leg.order_type)
    if leg.order_type in ("stop", "stop_limit"):
        _check_price(leg.stop, "stop", suffix, leg.order_type)


def _check_price(value: Decimal | None, name: str, suffix: str, kind: str) -> None:
    if value is None or Decimal(value) <= 0:
        raise OrderShapeError(
            f"{name}_required", f"a {kind} order needs a positive {name}", field=f"{name}{suffix}"
        )
    value = Decimal(value)
    tick = CENT if value >= 1 else SUB_PENNY
    if value != value.quantize(tick):
        raise OrderShapeError(
            f"{name}_tick", f"{name} {value} is not a multiple of {tick}", field=f"{name}{suffix}"
        )


def _check_pair(first: Leg, second: Leg, cls: str, suffix: str) -> None:
    if first.symbol != second.symbol:
        raise OrderShapeError(
            f"{cls}_symbol_mismatch",
            f"the paired legs must trade one symbol ({first.symbol} vs {second.symbol})",
            field=f"symbol{suffix}",
        )
    if first.order_type == second.order_type:
        raise OrderShapeError(
            f"{cls}_same_type",
            f"the paired legs must have different types (both {first.order_type})",
            field=f"type{suffix}",
        )


# --- market-entry brackets ----------------------------------------------------------------------
def needs_entry_price(request: OrderRequest) -> bool:
    """A bracket (oto/otoco) whose entry leg is a market order: Tradier refuses it as is."""
    return (
        request.order_class in ("oto", "otoco")
        and bool(request.legs)
        and request.legs[0].order_type == "market"
    )


def marketable_limit_price(side: str, quote: Quote | None, offset: Decimal) -> Decimal:
    """The limit that fills like a market order while capping the price: ask + offset for a
    buy (bid - offset for a sell), rounded away from the touch to the tick; last +/- offset
    without a two-sided quote. No quote at all → OrderShapeError (nothing to cap with)."""
    buying = side in BUY_SIDES
    touch = None
    if quote is not None:
        touch = quote.ask if buying else quote.bid
        if not touch or touch <= 0:
            touch = quote.last
    if not touch or touch <= 0:
        raise OrderShapeError(
            "entry_price_unknown",
            "a market-entry bracket becomes a marketable limit, but there is no quote or last",
            field="price[0]",
        )
    raw = Decimal(touch) + offset if buying else Decimal(touch) - offset
    tick = CENT if raw >= 1 else SUB_PENNY
    return raw.quantize(tick, rounding=ROUND_CEILING if buying else ROUND_FLOOR)


def with_marketable_entry(request: OrderRequest, quote: Quote | None, offset: Decimal):
    """`request` with a market entry leg replaced by its marketable limit (other orders are
    returned unchanged). The exit legs are untouched: they were priced from the signal."""
    if not needs_entry_price(request):
        return request
    entry = request.legs[0]
    price = marketable_limit_price(entry.side, quote, offset)
    legs = (replace(entry, order_type="limit", price=price, stop=None), *request.legs[1:])
    return replace(request, legs=legs, order_type="limit", price=price)


# --- resting protection --------------------------------------------------------------------------
def protection_pairs(
    *,
    symbol: str,
    held: int,
    partial: int,
    stop: Decimal,
    t1: Decimal | None,
    t2: Decimal | None,
    tag: str,
    exit_side: str = "sell",
    duration: str = "day",
) -> list[OrderRequest]:
    """The resting exits that cover `held` shares at the broker: an OCO (stop + T1 limit) for
    the `partial` quantity and an OCO (stop + T2 limit) for the rest; without a target, a plain
    stop for that part. Every share is covered by exactly one stop. Each request is validated
    (OrderShapeError if the levels cannot make a valid order)."""
    if held < 1:
        return []
    partial = max(0, min(int(partial), held)) if t1 is not None else 0
    parts = [(partial, t1, "t1"), (held - partial, t2, "t2")]
    requests = []
    for qty, target, name in parts:
        if qty < 1:
            continue
        stop_leg = Leg(symbol, exit_side, qty, "stop", stop=stop)
        if target is None:
            request = OrderRequest(
                symbol, exit_side, qty, "stop", f"{tag}-stop-{name}", stop=stop, duration=duration
            )
        else:
            request = OrderRequest(
                symbol,
                exit_side,
                qty,
                "stop",
                f"{tag}-oco-{name}",
                duration=duration,
                order_class="oco",
                legs=(stop_leg, Leg(symbol, exit_side, qty, "limit", price=target)),
            )
        validate(request)
        requests.append(request)
    return requests
