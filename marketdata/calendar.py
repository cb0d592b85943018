"""The exchange calendar, once, where market data is born: which days the NYSE trades (XNYS from
`exchange_calendars`, one range for every stage: 2000 to two years ahead) and when they open and
close, holidays and 13:00 early closes included. Bar healing, back-fills, replay, features,
risk and the backtests all read it from here. All answers are tz-aware UTC."""

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


FIRST_DAY = "2000-01-01"
DateOutOfBounds = xcals.errors.DateOutOfBounds


@lru_cache(maxsize=1)
def xnys():
    """The XNYS calendar over the project's one range (loaded once per process)."""
    return xcals.get_calendar("XNYS", start=FIRST_DAY, end=f"{date.today().year + 2}-12-31")


_calendar = xnys


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


def next_day_open(now: datetime) -> datetime | None:
    """The open of the first session on a New York date after `now`'s (the next trading
    day: a halt of the day's loss limit ends there, not at a later open the same day).
    None when no session follows within three weeks (outside any sane calendar)."""
    day = now.astimezone(NY).date()
    for ahead in range(1, 22):
        session = session_for(day + timedelta(days=ahead))
        if session is not None:
            return session.open
    return None
