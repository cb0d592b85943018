"""Operator brackets and dry-run orders: preview a bracket, place an OTOCO bracket under the
risk rules (or forced, audited), show what an order would send. Input problems raise typed
errors (`trading.core.errors`) that views map to field errors by code."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from autotrader_site.clock import clock
from risk.selectors import symbol_params_get
from risk.types import Intent
from trading.brokers import broker_get
from trading.brokers.base import BrokerRejected, OrderRequest
from trading.core import lifecycle
from trading.core.errors import BracketLevelsMissing, ForceNotAllowed, NoPrice, QuantityZero
from trading.core.types import to_cent
from trading.models import AuditEvent, OrderClass, OrderRole, OrderStatus, OrderType, Trade
from trading.orm_ledger import (
    OrmLedger,
    bracket_children_create,
    bracket_legs,
    order_create,
    order_submit,
    unique_tag,
)


def _last_price(symbol: str) -> Decimal | None:
    from marketdata.selectors import bars_as_data

    last = bars_as_data(symbol=symbol, limit=1)
    return to_cent(last[-1].close) if last else None


def bracket_preview(
    *,
    symbol: str,
    qty: int | None = None,
    stop_pct: Decimal | float | str | None = None,
    tp_pct: Decimal | float | str | None = None,
    price: Decimal | float | str | None = None,
    now: datetime | None = None,
) -> dict:
    """Stop, target, notional, risk and reward of a bracket before placing it, with the risk
    checks it would meet. Percentages default to the symbol's effective STOP/TP values.
    Raises NoPrice (no price given or stored) and BracketLevelsMissing."""
    from risk.services import risk_preview

    symbol = symbol.upper()
    params = symbol_params_get(symbol=symbol)
    stop_pct = Decimal(str(stop_pct)) if stop_pct is not None else params.stop_pct
    tp_pct = Decimal(str(tp_pct)) if tp_pct is not None else params.tp_pct
    base = to_cent(price) if price is not None else _last_price(symbol)
    if base is None:
        raise NoPrice("no price: pass price=", symbol=symbol)
    if not stop_pct or not tp_pct:
        raise BracketLevelsMissing(
            "stop_pct and tp_pct are required (argument, override, or STOP_PCT/TP_PCT)",
            symbol=symbol,
            price=str(base),
        )
    stop = to_cent(base * (1 - stop_pct))
    target = to_cent(base * (1 + tp_pct))
    risk = risk_preview(symbol=symbol, qty=qty, price=base, stop_price=stop, now=now)
    size = risk["qty"] or 0
    return {
        "symbol": symbol,
        "price": str(base),
        "qty": size,
        "stop_pct": str(stop_pct),
        "tp_pct": str(tp_pct),
        "stop": str(stop),
        "target": str(target),
        "notional": str(to_cent(base * size)),
        "risk_per_share": str(base - stop),
        "risk_usd": str(to_cent((base - stop) * size)),
        "reward_usd": str(to_cent((target - base) * size)),
        "reward_risk": str(((target - base) / (base - stop)).quantize(Decimal("0.01"))),
        "approved": risk["approved"],
        "checks": risk["checks"],
        "reasons": risk["reasons"],
    }


def bracket_place(
    *,
    symbol: str,
    qty: int | None = None,
    stop_pct=None,
    tp_pct=None,
    price=None,
    order_type: str = OrderType.MARKET,
    force: bool = False,
    user=None,
    now: datetime | None = None,
) -> dict:
    """Place an OTOCO bracket (entry, take-profit limit, protective stop). Risk rules apply
    unless `force`, which needs a superuser and is audited. Respects DRY_RUN (paper broker).
    Raises ForceNotAllowed, NoPrice, BracketLevelsMissing, QuantityZero."""
    from risk import rules
    from risk.config import RiskConfig

    now = now or clock.now()
    if force and not getattr(user, "is_superuser", False):
        raise ForceNotAllowed("force=true needs a superuser")
    preview = bracket_preview(
        symbol=symbol, qty=qty, stop_pct=stop_pct, tp_pct=tp_pct, price=price, now=now
    )
    if not preview["approved"] and not force:
        return {**preview, "placed": False}
    size = int(qty or preview["qty"] or 0)
    if size < 1:
        raise QuantityZero("quantity is 0", symbol=preview["symbol"])
    symbol = preview["symbol"]
    entry_price = Decimal(preview["price"])
    stop, target = Decimal(preview["stop"]), Decimal(preview["target"])
    limit = to_cent(price) if order_type == OrderType.LIMIT else None
    _shape_check(symbol, size, order_type, limit, target, stop, entry_price)
    broker = broker_get()
    ledger = OrmLedger(broker)
    config = RiskConfig.from_settings()
    with ledger.decision_lock():
        if not force:  # re-check inside the lock: limits hold across workers
            params = symbol_params_get(symbol=symbol, config=config)
            decision = rules.evaluate(
                Intent(symbol=symbol, entry_price=entry_price, stop_price=stop, qty=size),
                ledger.exposure(now=now),
                config,
                now,
                params,
            )
            if not decision.approved:
                return {**preview, "placed": False, "reasons": decision.reasons}
        trade = Trade.objects.create(
            setup="MANUAL_BRACKET",
            symbol=symbol,
            execution_symbol=symbol,
            qty=size,
            stop_price=stop,
            initial_stop_price=stop,
            target_two=target,
            deadline=None,
            created_at=now,
        )
        legs = bracket_legs(symbol, size, order_type, limit, target, stop)
        base = f"at-manual-{symbol}-{now:%Y%m%d%H%M%S}"
        entry = order_create(
            symbol=symbol,
            side="buy",
            qty=size,
            order_type=order_type,
            price=limit,
            role=OrderRole.ENTRY,
            tag=unique_tag(f"{base}-entry"),
            trade=trade,
            order_class=OrderClass.OTOCO,
            legs=legs,
            now=now,
            broker=broker,
        )
        bracket_children_create(entry, trade, legs, base=base, now=now, broker=broker)
        AuditEvent.objects.create(
            action="bracket_place_forced" if force else "bracket_place",
            user=user if getattr(user, "pk", None) else None,
            details={
                "symbol": symbol,
                "qty": size,
                "stop": str(stop),
                "target": str(target),
                "force": force,
                "reasons": preview["reasons"],
                "trade": trade.pk,
            },
        )
    order = order_submit(order=entry, now=now, broker=broker)
    if order.status == OrderStatus.REJECTED:
        lifecycle.trade_close(ledger, trade, now=now, status="cancelled", reason="entry_rejected")
    return {
        **preview,
        "qty": size,
        "placed": order.status != OrderStatus.REJECTED,
        "forced": force,
        "dry_run": broker.name == "paper",
        "order_id": order.pk,
        "tag": order.tag,
        "status": order.status,
        "reject_reason": order.reject_reason,
        "trade_id": trade.pk,
    }


def _shape_check(symbol, size, order_type, limit, target, stop, reference) -> None:
    """Refuse, before any row is written, a bracket Tradier would refuse: raises OrderShapeError
    (HTTP 400 naming the rule). A market entry is checked as the marketable limit the Tradier
    client will send (priced here from the bracket's reference price)."""
    from django.conf import settings

    from trading.brokers.base import Leg, Quote
    from trading.brokers.order_shapes import validate, with_marketable_entry

    legs = tuple(
        Leg(
            leg["symbol"],
            leg["side"],
            int(leg["qty"]),
            leg["order_type"],
            Decimal(leg["price"]) if leg["price"] else None,
            Decimal(leg["stop"]) if leg["stop"] else None,
        )
        for leg in bracket_legs(symbol, size, order_type, limit, target, stop)
    )
    request = OrderRequest(
        symbol,
        "buy",
        size,
        order_type,
        "at-manual-check",
        price=limit,
        order_class="otoco",
        legs=legs,
    )
    quote = Quote(symbol, bid=None, ask=None, last=reference)
    validate(with_marketable_entry(request, quote, Decimal(str(settings.ENTRY_MARKETABLE_OFFSET))))


def order_dryrun(
    *, symbol: str, side: str, qty: int, order_type: str = "market", price=None, stop=None
) -> dict:
    """What would be sent for this order (Tradier form, validated like Tradier) and what the
    risk rules say (for buys). Nothing is sent or stored."""
    from risk.services import risk_preview
    from trading.brokers.base import validate_request
    from trading.brokers.tradier import order_form

    request = OrderRequest(
        symbol=symbol.upper(),
        side=side,
        qty=int(qty),
        order_type=order_type,
        tag="at-dryrun-preview",
        price=to_cent(price),
        stop=to_cent(stop),
    )
    try:
        validate_request(request)
        valid, problem = True, ""
    except BrokerRejected as exc:
        valid, problem = False, str(exc)
    out = {"valid": valid, "error": problem, "request": order_form(request), "dry_run": True}
    if side == "buy":
        out["risk"] = risk_preview(symbol=symbol, qty=int(qty), price=price, stop_price=stop)
    return out
