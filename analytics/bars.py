"""Bars for analysis: loaded from a CSV file or the database into one DataFrame per symbol.

The frame is indexed by the bar's start (tz-aware UTC) with float columns open, high, low,
close, volume, plus `session` (the America/New_York trading date) and `regular` (inside the
exchange's regular session, early closes included).
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from marketdata.calendar import DateOutOfBounds, xnys
from marketdata.timestamps import series_to_utc, zone
from marketdata.types import BarData

log = logging.getLogger(__name__)

MARKET_TZ = "America/New_York"
PRICE_COLUMNS = ["open", "high", "low", "close", "volume"]


def _calendar():
    return xnys()


def bars_frame_from_data(bars: list[BarData]) -> pd.DataFrame:
    """A frame from BarData values (duplicates on the same minute: the first wins)."""
    if not bars:
        return empty_frame()
    frame = pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        index=pd.DatetimeIndex([b.ts for b in bars], name="ts").tz_convert("UTC"),
    )
    return _finish(frame)


def bars_frame_from_csv(path: str | Path, *, tz: str | None = None) -> pd.DataFrame:
    """Read a `ts,open,high,low,close,volume` CSV; rows with unparseable or inconsistent values
    are dropped with a warning naming how many (never fatal). Times without an offset are
    refused (marketdata.timestamps.NaiveTimestamps) unless `tz` names their timezone."""
    return _frame_from_raw(pd.read_csv(path, dtype=str), path, tz)


def bars_frame_from_parquet(path: str | Path, *, tz: str | None = None) -> pd.DataFrame:
    """The same from a Parquet file (`ts` as text or a timestamp column)."""
    return _frame_from_raw(pd.read_parquet(path), path, tz)


def bars_frame_from_file(path: str | Path, *, tz: str | None = None) -> pd.DataFrame:
    """CSV or Parquet, by the file's suffix."""
    if str(path).lower().endswith((".parquet", ".pq")):
        return bars_frame_from_parquet(path, tz=tz)
    return bars_frame_from_csv(path, tz=tz)


def _frame_from_raw(raw: pd.DataFrame, path, tz: str | None) -> pd.DataFrame:
    missing = {"ts", *PRICE_COLUMNS} - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: header lacks {', '.join(sorted(missing))}")
    ts = series_to_utc(raw["ts"], zone(tz))
    values = raw[PRICE_COLUMNS].apply(pd.to_numeric, errors="coerce")
    frame = values.set_index(pd.DatetimeIndex(ts, name="ts"))
    ok = frame.index.notna() & np.isfinite(frame.to_numpy(dtype=float)).all(axis=1)
    prices = frame[["open", "high", "low", "close"]]
    ok &= (prices > 0).all(axis=1).to_numpy() & (frame["volume"] >= 0).to_numpy()
    ok &= (frame["high"] >= prices.max(axis=1)).to_numpy()
    ok &= (frame["low"] <= prices.min(axis=1)).to_numpy()
    dropped = int((~ok).sum())
    if dropped:
        log.warning("%s: %d bad rows skipped", path, dropped)
    return _finish(frame[ok])


def bars_frame_from_db(
    *, symbol: str, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    from marketdata.selectors import bars_as_data

    return bars_frame_from_data(bars_as_data(symbol=symbol, start=start, end=end))


def empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame(
        {c: pd.Series(dtype=float) for c in PRICE_COLUMNS},
        index=pd.DatetimeIndex([], tz="UTC", name="ts"),
    )
    return _finish(frame)


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[~frame.index.duplicated(keep="first")].sort_index().astype(float)
    # one time unit everywhere (pandas may infer seconds or microseconds from text)
    frame.index = pd.DatetimeIndex(frame.index).as_unit("ns").rename("ts")
    local = frame.index.tz_convert(MARKET_TZ)
    frame["session"] = np.asarray(local.date, dtype=object)
    frame["regular"] = regular_session_mask(frame.index)
    return frame


def regular_session_mask(index: pd.DatetimeIndex) -> np.ndarray:
    """True for bars that start inside the exchange's regular session (holidays and early
    closes from the XNYS calendar)."""
    if len(index) == 0:
        return np.zeros(0, dtype=bool)
    cal = _calendar()
    local_days = pd.DatetimeIndex(index.tz_convert(MARKET_TZ).date)
    first, last = local_days.min(), local_days.max()
    try:
        sessions = cal.sessions_in_range(first, last)
    except (ValueError, DateOutOfBounds):
        sessions = pd.DatetimeIndex([])
    day_open = _naive_utc(cal.opens.reindex(sessions).reindex(local_days))
    day_close = _naive_utc(cal.closes.reindex(sessions).reindex(local_days))
    ts = index.tz_convert("UTC").tz_localize(None).to_numpy()
    # NaT (not a session) compares False, so holidays and weekends are outside.
    mask = (ts >= day_open) & (ts < day_close)
    return np.asarray(mask, dtype=bool)


def _naive_utc(series: pd.Series) -> np.ndarray:
    values = pd.DatetimeIndex(series.to_numpy())
    if values.tz is not None:
        values = values.tz_convert("UTC").tz_localize(None)
    return values.to_numpy()


def regular_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["regular"].to_numpy()]


def sessions_of(frame: pd.DataFrame) -> list[date]:
    return sorted(set(frame.loc[frame["regular"], "session"]))


def frame_to_bars(frame: pd.DataFrame, *, symbol: str, source: str = "replay") -> list[BarData]:
    """BarData values for a frame (e.g. to replay it through the live pipeline)."""
    out = []
    for ts, o, h, lo, c, v in zip(
        frame.index.to_pydatetime(),
        frame["open"].to_numpy(),
        frame["high"].to_numpy(),
        frame["low"].to_numpy(),
        frame["close"].to_numpy(),
        frame["volume"].to_numpy(),
        strict=True,
    ):
        out.append(
            BarData(symbol, ts, float(o), float(h), float(lo), float(c), float(v), source=source)
        )
    return out
