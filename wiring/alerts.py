"""Operator alerts over a webhook (Discord- and Slack-compatible JSON).

Sources: rejected orders and trading-state changes (the kill switch among them) through model
signals (`alert_receivers_connect`), stream stalls and failed reconciliations through
`alerts_watch`, which the health endpoint runs on every probe; any module may call
`alert_send(kind, text, **fields)` directly. At most one alert per `kind` is sent every
ALERT_MIN_INTERVAL_SEC (shared through the cache, so every process counts together). Sending
never raises: an alert that cannot be delivered is logged and the trading path goes on.
"""

from __future__ import annotations

import logging
import re
import threading

import httpx
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

STREAM_STALL = "stream_stall"
KILL_SWITCH = "kill_switch"
RECONCILE_FAILED = "reconcile_failed"
ORDER_REJECTED = "order_rejected"
TRADING_STATE = "trading_state"

TIMEOUT_SEC = 3.0
_MAX_CONTENT = 1900  # Discord rejects content over 2000 characters
_SECRET_NAME = re.compile(r"token|secret|password|key|authorization", re.IGNORECASE)
_KIND_RE = re.compile(r"[^a-z0-9_.-]")


def _cache_key(kind: str) -> str:
    return f"autotrader:alert:{_KIND_RE.sub('', kind.lower())[:64]}"


def alert_payload(kind: str, text: str, fields: dict) -> dict:
    """The JSON body: `content` for Discord, `text` for Slack, the fields as lines."""
    lines = [f"[AutoTrader] {kind}: {text}"]
    for name, value in fields.items():
        shown = "***" if _SECRET_NAME.search(name) else value
        lines.append(f"{name}: {shown}")
    message = "\n".join(lines)[:_MAX_CONTENT]
    return {"username": "AutoTrader", "content": message, "text": message}


def alert_send(kind: str, text: str, **fields) -> bool:
    """Post one alert; returns True when the webhook accepted it.

    False when no ALERT_WEBHOOK_URL is configured, when the same kind was sent less than
    ALERT_MIN_INTERVAL_SEC ago, or when delivery failed (logged, without the URL)."""
    url = settings.ALERT_WEBHOOK_URL
    if not url:
        logger.info("alert %s (no webhook configured): %s", kind, text)
        return False
    key = _cache_key(kind)
    interval = settings.ALERT_MIN_INTERVAL_SEC
    if interval > 0 and not cache.add(key, 1, timeout=interval):
        logger.info("alert %s suppressed (rate limit %ss): %s", kind, interval, text)
        return False
    try:
        response = httpx.post(url, json=alert_payload(kind, text, fields), timeout=TIMEOUT_SEC)
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        logger.warning(
            "alert %s not delivered: webhook answered %s", kind, exc.response.status_code
        )
    except httpx.HTTPError as exc:
        logger.warning("alert %s not delivered: %s", kind, type(exc).__name__)
    else:
        logger.info("alert %s sent: %s", kind, text)
        return True
    if interval > 0:
        cache.delete(key)  # a failed delivery must not silence the next attempt
    return False


def alert_send_background(kind: str, text: str, **fields) -> threading.Thread:
    """alert_send on a daemon thread, for callers that must not wait (the stream loop)."""
    thread = threading.Thread(
        target=alert_send, args=(kind, text), kwargs=fields, daemon=True, name=f"alert-{kind}"
    )
    thread.start()
    return thread


# --- where alerts come from -----------------------------------------------------------------
def _on_order_event(sender, instance, created, **kwargs) -> None:
    if not created or instance.to_status != "rejected":
        return
    from django.db import transaction

    order = instance.order
    text = (
        f"{order.side} {order.qty} {order.symbol} rejected: {order.reject_reason or instance.cause}"
    )
    transaction.on_commit(
        lambda: alert_send_background(ORDER_REJECTED, text, order_id=order.pk, tag=order.tag)
    )


QUIET_ACTORS = {"startup"}  # the fail-closed halt around start-up reconciliation is routine


def _on_trading_state_change(sender, instance, created, **kwargs) -> None:
    if not created or instance.from_state == instance.to_state:
        return
    if instance.actor in QUIET_ACTORS:
        return
    from django.db import transaction

    by_operator = instance.changed_by_id is not None
    kind = KILL_SWITCH if instance.to_state == "HALTED" and not by_operator else TRADING_STATE
    text = f"{instance.from_state} -> {instance.to_state} by {instance.actor or 'system'}"
    transaction.on_commit(lambda: alert_send_background(kind, text, reason=instance.reason))


def alert_receivers_connect() -> None:
    """Alert on rejected orders and trading-state changes (the kill switch among them), in
    every process that writes them. Called from an AppConfig.ready()."""
    from django.db.models.signals import post_save

    from risk.models import TradingStateChange
    from trading.models import OrderEvent

    post_save.connect(_on_order_event, sender=OrderEvent, dispatch_uid="alerts.order_rejected")
    post_save.connect(
        _on_trading_state_change, sender=TradingStateChange, dispatch_uid="alerts.trading_state"
    )


def alerts_watch_on_health(sender, *, now, **kwargs) -> None:
    """The health endpoint was polled: check for stalls and failed reconciliations."""
    try:
        alerts_watch(now=now)
    except Exception:
        logger.exception("health: alert watch failed")


def alerts_watch(*, now) -> list[str]:
    """Conditions seen from outside the stream and the worker: bars stalled during the regular
    session, the last reconciliation failed. Called by the health endpoint, which probes poll;
    the per-kind rate limit keeps a stalled hour to one alert per interval. Returns the kinds
    that are alerting now."""
    from marketdata.selectors import last_bar_time
    from risk.calendar import session_at
    from trading.selectors import reconciliation_last

    firing = []
    session = session_at(now)
    if session is not None and session.open <= now < session.close:
        last = last_bar_time()
        age = None if last is None else (now - last).total_seconds()
        grace = settings.STREAM_STALL_SEC
        if (age is None and (now - session.open).total_seconds() > grace) or (
            age is not None and age > grace
        ):
            firing.append(STREAM_STALL)
            shown = "never" if age is None else f"{age:.0f} s ago"
            alert_send_background(STREAM_STALL, f"no new bar during the session (last {shown})")
    last_reconcile = reconciliation_last()
    if isinstance(last_reconcile, dict) and last_reconcile.get("ok") is False:
        firing.append(RECONCILE_FAILED)
        alert_send_background(
            RECONCILE_FAILED,
            f"reconciliation failed at {last_reconcile.get('at')}",
            error=str(last_reconcile.get("error", ""))[:300],
        )
    return firing
