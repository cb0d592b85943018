"""Deterministic order tags: the same signal always yields the same tag, so a retry or a
restart finds the order it already sent instead of sending a second one."""

from __future__ import annotations

import re
from datetime import datetime

_ALLOWED = re.compile(r"[^A-Za-z0-9-]")


def signal_tag(symbol: str, setup: str, bar_ts: datetime, role: str = "entry") -> str:
    stamp = bar_ts.strftime("%Y%m%d%H%M")
    raw = f"at-{symbol}-{setup.replace('_', '')}-{stamp}-{role}"
    return _ALLOWED.sub("", raw)[:255]
