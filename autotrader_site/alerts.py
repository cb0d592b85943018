"""Operator alerts over a webhook (Discord- and Slack-compatible JSON).

Other modules call `alert_send(kind, text, **fields)` on stream stalls, the kill switch,
reconciliation failures and rejected orders. At most one alert per `kind` is sent every
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
