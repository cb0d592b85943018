"""Regular-session geometry of the US equity market (America/New_York).

Only bars that START inside the regular session feed features and setups: 09:30 up to the close,
which is 16:00 or, on exchange early-close days (XNYS calendar from `exchange_calendars`), 13:00.
Pre- and post-market bars (the shared SPY files hold 04:00-20:00 ET) are ignored: their thin,
erratic prints would distort EMA/ATR/VWAP and the setups only trade the regular session.
Days the XNYS calendar does not know as sessions (weekends, holidays, dates outside its range)
get the normal 09:30-16:00 geometry, so futures-like data recorded on those days still works.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
SESSION_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
FULL_SESSION_MINUTES = 390
OPENING_RANGE_MINUTES = 30


@dataclass(frozen=True, slots=True)
class SessionDay:
    day: date
    open_utc: datetime
    close_utc: datetime
    minutes: int  # 390, or 210 on an early close


@lru_cache(maxsize=1)
def _early_closes() -> dict[date, time]:
    try:
        from marketdata.calendar import xnys

        cal = xnys()  # the project's one calendar (and range), as risk reads it
    except Exception:  # calendar unavailable: every day is a full day
        return {}
    out: dict[date, time] = {}
    for ts in cal.early_closes:
        close = cal.closes.loc[ts]
        out[ts.date()] = close.tz_convert(ET).time()
    return out


@lru_cache(maxsize=4096)
def session_day(day: date) -> SessionDay:
    open_et = datetime.combine(day, SESSION_OPEN, ET)
    close_et = datetime.combine(day, _early_closes().get(day, REGULAR_CLOSE), ET)
    minutes = int((close_et - open_et).total_seconds() // 60)
    return SessionDay(day, open_et.astimezone(UTC), close_et.astimezone(UTC), minutes)


def et_date(ts: datetime) -> date:
    return ts.astimezone(ET).date()


def session_minute(ts: datetime) -> tuple[SessionDay, int] | None:
    """(session, minutes since the 09:30 open) for a bar START `ts`, or None outside the
    regular session."""
    sd = session_day(et_date(ts))
    minute = int((ts - sd.open_utc).total_seconds() // 60)
    if 0 <= minute < sd.minutes:
        return sd, minute
    return None


def bar_close_et(bar_ts: datetime) -> datetime:
    """Decision time of a bar: its close, in New York time."""
    return (bar_ts + timedelta(minutes=1)).astimezone(ET)
