"""Append-only JSON-lines journal (settings.EVENTS_JOURNAL, default state/events.jsonl)."""

from __future__ import annotations

import fcntl
import json
import logging
from datetime import UTC, date, datetime
from decimal import Decimal

from django.conf import settings

log = logging.getLogger(__name__)


def _default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def json_safe(value):
    """`value` with NaN/inf floats as None and dates as ISO strings (JSONB and the journal
    reject NaN)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def journal_append(event: dict) -> None:
    """Append one event; a journal write failure is logged, never raised into trading."""
    record = {"logged_at": datetime.now(UTC).isoformat(), **event}
    line = json.dumps(json_safe(record), default=_default, separators=(",", ":")) + "\n"
    path = settings.EVENTS_JOURNAL
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(line)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    except (OSError, ValueError):
        log.exception("could not append to the events journal %s", path)
