"""The trading window of the risk rules on the exchange calendar (`marketdata.calendar`, where
the sessions, holidays and early closes live; re-exported here for the risk stage)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from marketdata.calendar import (  # noqa: F401 - the calendar's names, re-exported
    NY,
    REGULAR_CLOSE,
    REGULAR_OPEN,
    Session,
    is_holiday,
    next_day_open,
    session_at,
    session_for,
)


def trading_window(session: Session, start: time, end: time) -> tuple[datetime, datetime]:
    """The configured window (New York wall times) intersected with the session, keeping the
    same margin before an early close: 09:31-15:55 on a 13:00 close day becomes 09:31-12:55."""
    day = session.day
    w_start = datetime.combine(day, start, NY).astimezone(UTC)
    w_end = datetime.combine(day, end, NY).astimezone(UTC)
    if session.early_close:
        regular_close = datetime.combine(day, REGULAR_CLOSE, NY).astimezone(UTC)
        margin = max(timedelta(0), regular_close - w_end)
        w_end = min(w_end, session.close - margin)
    return max(w_start, session.open), min(w_end, session.close)
