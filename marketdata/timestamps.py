"""Bar timestamps from files: timezone-aware, or refused.

A CSV or Parquet file whose times carry no offset is ambiguous: read as UTC, New York times land
4-5 hours early (pre-market bars traded as the open). Such files are refused unless the caller
names their timezone (`--tz America/New_York`); times with an offset are converted to UTC and
`--tz` does not touch them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

_OFFSET = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


class NaiveTimestamps(ValueError):
    """Times without an offset and no --tz given."""


def zone(name: str | None) -> ZoneInfo | None:
    """The zone named by --tz (None when not given); a bad name is a clear error."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"--tz {name!r} is not a timezone name (e.g. America/New_York)") from None


def _refusal(example: str) -> NaiveTimestamps:
    return NaiveTimestamps(
        f"timestamp {example!r} has no timezone: refused (it would be read as UTC). Give the "
        "file's timezone with --tz, e.g. --tz America/New_York, or write UTC times ending in Z"
    )


def parse_ts(text: str, tz: ZoneInfo | None = None) -> datetime:
    """One ISO-8601 timestamp as UTC. Naive: localised in `tz`, or NaiveTimestamps."""
    raw = text.strip()
    ts = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    if ts.tzinfo is None:
        if tz is None:
            raise _refusal(raw)
        ts = ts.replace(tzinfo=tz)
    return ts.astimezone(UTC)


def series_to_utc(values: pd.Series, tz: ZoneInfo | None = None) -> pd.DatetimeIndex:
    """A column of timestamps (ISO text or datetimes) as a UTC index; unparseable values are
    NaT (the caller drops and counts them). Naive values: localised in `tz`, or refused;
    times that do not exist or repeat at a DST switch become NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        index = pd.DatetimeIndex(values)
        if index.tz is not None:
            return index.tz_convert("UTC")
        if tz is None:
            raise _refusal(str(index[0]) if len(index) else "")
        return index.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").tz_convert("UTC")
    text = values.astype("string").str.strip()
    aware = text.str.contains(_OFFSET, na=False).to_numpy()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if aware.any():
        out[aware] = pd.to_datetime(text[aware], utc=True, errors="coerce", format="ISO8601")
    naive = ~aware & text.notna().to_numpy() & (text != "").fillna(False).to_numpy()
    if naive.any():
        if tz is None:
            raise _refusal(str(text[naive].iloc[0]))
        local = pd.to_datetime(text[naive], errors="coerce", format="ISO8601")
        out[naive] = (
            pd.DatetimeIndex(local)
            .tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            .tz_convert("UTC")
        )
    return pd.DatetimeIndex(out)
