"""The replay feed: recorded or synthetic 1-minute bars published exactly like live bars.

Bars go through the same path as the stream (store, then `publish_bar_closed`), and the market
clock is moved to each bar's close, so a replay trades as the recorded session would have,
whatever the wall-clock hour.
"""

from __future__ import annotations

import csv
import logging
import math
import time as wall
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from marketdata.calendar import xnys
from marketdata.timestamps import NaiveTimestamps, parse_ts, series_to_utc
from marketdata.types import BarData

log = logging.getLogger(__name__)

CSV_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class BadRow(ValueError):
    pass


def _parse_price(row: dict, name: str) -> float:
    raw = row.get(name)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadRow(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise BadRow(f"{name}={raw!r} must be a positive number")
    return value


def parse_bar_row(row: dict, *, symbol: str, source: str, tz: ZoneInfo | None = None) -> BarData:
    """Validate one CSV row; raises BadRow with a readable reason, and NaiveTimestamps (the
    whole file is refused) for a time without offset when no `tz` is given."""
    try:
        ts = parse_ts(row.get("ts") or "", tz)
    except NaiveTimestamps:
        raise
    except ValueError as exc:
        raise BadRow(f"ts: {exc}") from None
    o, h, lo, c = (_parse_price(row, k) for k in ("open", "high", "low", "close"))
    try:
        volume = float(row.get("volume") or 0)
    except (TypeError, ValueError):
        raise BadRow(f"volume={row.get('volume')!r} is not a number") from None
    if not math.isfinite(volume) or volume < 0:
        raise BadRow(f"volume={row.get('volume')!r} must be >= 0")
    if h < max(o, c, lo) or lo > min(o, c, h):
        raise BadRow(f"high/low inconsistent (o={o} h={h} l={lo} c={c})")
    return BarData(symbol, ts, o, h, lo, c, volume, source=source)


def read_bars_csv(
    path: str | Path, *, symbol: str, source: str = "replay", tz: ZoneInfo | None = None
) -> Iterator[BarData]:
    """Stream bars from a `ts,open,high,low,close,volume` CSV; bad rows are logged with their
    line number and skipped, never fatal. Naive times: localised in `tz`, else the file is
    refused (NaiveTimestamps)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(CSV_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: header lacks {', '.join(sorted(missing))}")
        for row in reader:
            try:
                yield parse_bar_row(row, symbol=symbol, source=source, tz=tz)
            except BadRow as exc:
                log.warning("%s line %d skipped: %s", path, reader.line_num, exc)


def read_bars_parquet(
    path: str | Path, *, symbol: str, source: str = "replay", tz: ZoneInfo | None = None
) -> Iterator[BarData]:
    """Bars from a Parquet file with the CSV's columns (`ts` as text or a timestamp column);
    the same row checks and the same timezone rule as the CSV reader."""
    frame = pd.read_parquet(path)
    missing = set(CSV_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: columns lack {', '.join(sorted(missing))}")
    stamps = series_to_utc(frame["ts"], tz)
    for number, (ts, row) in enumerate(zip(stamps, frame.to_dict("records"), strict=True)):
        if pd.isna(ts):
            log.warning("%s row %d skipped: ts %r is not a time", path, number, row["ts"])
            continue
        try:
            yield parse_bar_row(
                {**row, "ts": ts.isoformat()}, symbol=symbol, source=source, tz=None
            )
        except BadRow as exc:
            log.warning("%s row %d skipped: %s", path, number, exc)


def read_bars_file(
    path: str | Path, *, symbol: str, source: str = "replay", tz: ZoneInfo | None = None
) -> Iterator[BarData]:
    """CSV or Parquet (by the file's suffix)."""
    if str(path).lower().endswith((".parquet", ".pq")):
        return read_bars_parquet(path, symbol=symbol, source=source, tz=tz)
    return read_bars_csv(path, symbol=symbol, source=source, tz=tz)


def synthetic_sessions(
    *,
    symbol: str = "SPY",
    sessions: int = 2,
    seed: int = 7,
    end: date | None = None,
    start_price: float = 450.0,
) -> list[BarData]:
    """A seeded, realistic-looking set of regular sessions (09:30-16:00 ET, exchange calendar),
    so the project runs with no outside data. Trending legs alternate with pullbacks, volume is
    U-shaped through the day."""
    cal = xnys()
    end = end or (datetime.now(UTC).date() - timedelta(days=1))
    days = cal.sessions_in_range(
        pd.Timestamp(end) - pd.Timedelta(days=10 + 3 * sessions), pd.Timestamp(end)
    )[-sessions:]
    rng = np.random.default_rng(seed)
    price = start_price
    bars: list[BarData] = []
    for day in days:
        opens = cal.session_open(day).to_pydatetime()
        closes = cal.session_close(day).to_pydatetime()
        minutes = int((closes - opens).total_seconds() // 60)
        drift = 0.0
        for i in range(minutes):
            if i % 45 == 0:  # a new leg: up, down or sideways
                drift = float(rng.choice([0.00025, -0.0002, 0.0, 0.00015]))
            ret = drift + float(rng.normal(0, 0.0007))
            o = price
            c = max(1.0, o * (1 + ret))
            wick = abs(float(rng.normal(0, 0.0004))) * o
            h = max(o, c) + wick
            lo = min(o, c) - abs(float(rng.normal(0, 0.0004))) * o
            u = (i - minutes / 2) / (minutes / 2)
            volume = float(int(40_000 * (0.6 + 1.6 * u * u) * rng.uniform(0.6, 1.4)))
            ts = opens + timedelta(minutes=i)
            bars.append(
                BarData(
                    symbol,
                    ts,
                    round(o, 2),
                    round(h, 2),
                    round(lo, 2),
                    round(c, 2),
                    volume,
                    source="replay",
                )
            )
            price = c
    return bars


@dataclass
class ReplayStats:
    published: int = 0
    skipped: int = 0


class ReplayFeed:
    """Publishes bars in time order, pacing them at `speed`× real time after `warmup_bars`.

    `on_bar` is the store-and-publish step (injected so tests and backtests can reuse it);
    `set_clock` moves the market clock to each bar's close. `on_clock(now)` is the beat: it
    runs at every minute boundary the clock passes (before the bars starting there), and after
    the last bar up to `clock_end(last bar)` (the day's flat time), so clock rules (session
    close, time stops) fire even where no bar comes.
    """

    def __init__(
        self,
        bars: Iterable[BarData],
        *,
        on_bar: Callable[[BarData], None],
        set_clock: Callable[[datetime], None] | None = None,
        speed: float = 60.0,
        warmup_bars: int = 0,
        sleep: Callable[[float], None] = wall.sleep,
        on_clock: Callable[[datetime], None] | None = None,
        clock_end: Callable[[datetime], datetime | None] | None = None,
    ) -> None:
        self.on_clock = on_clock
        self.clock_end = clock_end
        self.bars = bars
        self.on_bar = on_bar
        self.set_clock = set_clock
        self.speed = speed
        self.warmup_bars = warmup_bars
        self.sleep = sleep
        self.stats = ReplayStats()

    def run(self, *, stop: Callable[[], bool] = lambda: False) -> ReplayStats:
        delay = 60.0 / self.speed if self.speed > 0 else 0.0
        last = None  # the latest minute boundary the clock reached
        bar = None
        for index, bar in enumerate(self.bars):
            if stop():
                break
            last = self._tick_until(last, bar.ts)
            if self.set_clock is not None:
                self.set_clock(bar.ts + timedelta(minutes=1))
            try:
                self.on_bar(bar)
                self.stats.published += 1
            except Exception:  # one bad bar must not end the session
                self.stats.skipped += 1
                log.exception("replay: processing %s %s failed; continuing", bar.symbol, bar.ts)
            if delay and index >= self.warmup_bars:
                self.sleep(delay)
        if bar is not None and self.clock_end is not None and not stop():
            end = self.clock_end(bar.ts)
            if end is not None:
                self._tick_until(last, end)
        return self.stats

    def _tick_until(self, last: datetime | None, until: datetime) -> datetime:
        """The beat at each minute boundary after `last` up to `until` (inclusive)."""
        if self.on_clock is None or last is None or until <= last:
            return until if last is None or until > last else last
        tick = last + timedelta(minutes=1)
        while tick <= until:
            if self.set_clock is not None:
                self.set_clock(tick)
            try:
                self.on_clock(tick)
            except Exception:
                log.exception("replay: clock tick at %s failed; continuing", tick)
            tick += timedelta(minutes=1)
        return until


def store_and_publish(bar: BarData) -> None:
    """What the live stream does with a closed bar: store it, then announce it."""
    from marketdata.events import publish_bar_closed
    from marketdata.services import bars_upsert

    bars_upsert(bars=[bar])
    publish_bar_closed(bar)


def replay_bars(
    bars: Iterable[BarData],
    *,
    speed: float = 0.0,
    warmup_bars: int = 0,
    stop: Callable[[], bool] = lambda: False,
) -> ReplayStats:
    """Replay `bars` through the live path with the market clock following the bars."""
    from autotrader_site.clock import MarketClock

    feed = ReplayFeed(
        bars,
        on_bar=store_and_publish,
        set_clock=MarketClock.set_replay_time,
        speed=speed,
        warmup_bars=warmup_bars,
        on_clock=publish_clock_tick,
        clock_end=day_clock_end,
    )
    return feed.run(stop=stop)


def publish_clock_tick(now: datetime) -> None:
    from marketdata.events import publish_clock_tick as publish

    publish(now)


def day_clock_end(last_bar_ts: datetime) -> datetime | None:
    """How far a replay's clock runs after its last bar: three minutes past the day's flat time
    (FLATTEN_BEFORE_CLOSE_MIN before the close: the flatten is placed, then filled), or None
    when the last bar is past it or the day has no session."""
    from django.conf import settings

    from marketdata.calendar import session_at

    session = session_at(last_bar_ts)
    if session is None:
        return None
    margin = timedelta(minutes=settings.FLATTEN_BEFORE_CLOSE_MIN)
    end = session.close - margin + timedelta(minutes=3)
    return end if end > last_bar_ts + timedelta(minutes=1) else None
