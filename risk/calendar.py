"""The NYSE calendar (exchange_calendars XNYS): which days trade and when they open and close,
including holidays and 13:00 early closes. All answers are tz-aware UTC."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

log = logging.getLogger(__name__)
NY = ZoneInfo("America/New_York")
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)


@dataclass(frozen=True)
class Session:
    day: date
    open: datetime  # UTC
    close: datetime  # UTC

    @property
    def early_close(self) -> bool:
        return self.close.astimezone(NY).time() < REGULAR_CLOSE


@lru_cache(maxsize=1)
def _calendar():
    return xcals.get_calendar("XNYS", start="2000-01-01", end=f"{date.today().year + 2}-12-31")


@lru_cache(maxsize=8192)
def session_for(day: date) -> Session | None:
    """The regular session on `day` (New York date), or None on weekends and holidays.
    Outside the calendar's range, weekdays are assumed to be full 09:30-16:00 sessions."""
    cal = _calendar()
    stamp = pd.Timestamp(day)
    if cal.first_session <= stamp <= cal.last_session:
        if not cal.is_session(stamp):
            return None
        return Session(
            day,
            cal.session_open(stamp).to_pydatetime().astimezone(UTC),
            cal.session_close(stamp).to_pydatetime().astimezone(UTC),
        )
    if day.weekday() >= 5:
        return None
    log.warning("date %s outside the XNYS calendar range; assuming a regular session", day)
    return Session(
        day,
        datetime.combine(day, REGULAR_OPEN, NY).astimezone(UTC),
        datetime.combine(day, REGULAR_CLOSE, NY).astimezone(UTC),
    )


def session_at(now: datetime) -> Session | None:
    """The session of `now`'s New York date (open or not at that instant)."""
    return session_for(now.astimezone(NY).date())


def is_holiday(day: date) -> bool:
    """A weekday with no session."""
    return day.weekday() < 5 and session_for(day) is None


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
