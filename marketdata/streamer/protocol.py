"""Polygon websocket protocol: messages are JSON arrays mixing status and data events.

Status events: `{"ev":"status","status":"connected|auth_success|auth_failed|auth_timeout|
success|error|max_connections|force_disconnect|slow_consumer","message":...}`. Per-second
aggregates: `{"ev":"A","sym":"SPY","v","av","op","vw","o","c","h","l","a","z","s","e"}`
(`z` = average trade size, `a` = today's VWAP, `s`/`e` = epoch ms); index aggregates
(`I:SPX`) carry no volume.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from marketdata.bar_builder import SecondAgg
from marketdata.clients.symbols import our_symbol

AUTH_SUCCESS = "auth_success"
AUTH_FAILED = "auth_failed"
AUTH_TIMEOUT = "auth_timeout"
CONNECTED = "connected"
RECONNECT_STATUSES = frozenset({"max_connections", "force_disconnect", "slow_consumer"})


_MIN_EPOCH_MS = 946_684_800_000  # 2000-01-01
_MAX_EPOCH_MS = 4_102_444_800_000  # 2100-01-01


class MalformedMessage(ValueError):
    pass


def parse_message(raw: str | bytes) -> list[dict]:
    """A websocket frame → its events (a lone object is treated as a one-element array)."""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: [[[[...
        raise MalformedMessage(f"not JSON: {str(raw)[:80]!r} ({type(exc).__name__})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise MalformedMessage(f"expected an array of events, got {type(data).__name__}")
    return [e for e in data if isinstance(e, dict)]


def _num(event: dict, key: str, default: Any = None) -> Any:
    value = event.get(key, default)
    return float(value) if value is not None else None


def agg_from_event(event: dict) -> SecondAgg:
    """An `A` event → SecondAgg under our symbol (I:SPX → SPX). Raises ValueError."""
    try:
        start_ms = int(event["s"])
        o, h, lo, c = (float(event[k]) for k in ("o", "h", "l", "c"))
        volume = _num(event, "v", 0.0) or 0.0
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"aggregate event lacks a field: {exc}") from None
    # A poisoned timestamp would move the bar builder's watermark (and close every minute).
    if not _MIN_EPOCH_MS <= start_ms <= _MAX_EPOCH_MS:
        raise ValueError(f"timestamp {start_ms} ms out of range")
    if not all(math.isfinite(x) for x in (o, h, lo, c, volume)) or volume < 0:
        raise ValueError("non-finite price or volume")
    if not isinstance(event.get("sym"), str) or not event["sym"]:
        raise ValueError("aggregate event without a symbol")
    if not (lo <= min(o, c) and h >= max(o, c)):
        raise ValueError(f"inconsistent o/h/l/c {o}/{h}/{lo}/{c}")
    return SecondAgg(
        symbol=our_symbol(str(event.get("sym", ""))),
        start=start_ms // 1000,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=volume,
        vwap=_num(event, "vw"),
        avg_trade_size=_num(event, "z"),
    )


def subscription_params(tickers: Iterable[str], *, channel: str = "A") -> str:
    return ",".join(f"{channel}.{t}" for t in tickers)


def tickers_named(message: str, tickers: Iterable[str]) -> list[str]:
    """The subscribed tickers a status message names (`A.I:SPX`, `I:SPX`, `SPY` as words)."""
    found = []
    for ticker in tickers:
        pattern = rf"(?<![A-Za-z0-9:]){re.escape(ticker)}(?![A-Za-z0-9])"
        if re.search(pattern, message or ""):
            found.append(ticker)
    return found


def is_symbol_error(event: dict) -> bool:
    """A status that refuses something (error/not entitled), as opposed to progress news."""
    status = str(event.get("status", "")).lower()
    message = str(event.get("message", "")).lower()
    return (
        status in {"error", "not_entitled"}
        or "not entitled" in message
        or ("not_entitled" in message)
    )
