"""The incremental feature engine: one object per symbol, O(1) work per regular-session bar.

Definitions (DESIGN §3) are shared with the vectorised twin in `vectorised.py`; a test pins the two
equal bar for bar. Only regular-session bars are used (see `sessions.py`); `update` returns None
for any other bar and leaves the state untouched.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime

import numpy as np

from strategies.features.sessions import (
    ET,
    FULL_SESSION_MINUTES,
    OPENING_RANGE_MINUTES,
    session_minute,
)

NAN = float("nan")
TRAILING_MIN_BARS = 20  # bars of history the trailing rvol fallback needs
_MINUTES = np.arange(FULL_SESSION_MINUTES)


class _Ema:
    """EMA with k = 2/(n+1) (or an explicit alpha), seeded with the mean of the first n values."""

    __slots__ = ("n", "k", "count", "seed_sum", "value")

    def __init__(self, n: int, alpha: float | None = None) -> None:
        self.n = n
        self.k = alpha if alpha is not None else 2.0 / (n + 1)
        self.count = 0
        self.seed_sum = 0.0
        self.value = NAN

    def push(self, x: float) -> float:
        self.count += 1
        if self.count < self.n:
            self.seed_sum += x
        elif self.count == self.n:
            self.seed_sum += x
            self.value = self.seed_sum / self.n
        else:
            self.value = self.value + self.k * (x - self.value)
        return self.value


class _HigherTimeframeEma:
    """EMA of n-minute bar closes built from the 1-minute stream.

    Buckets are aligned to the 09:30 open. A bucket is final once a bar of a later bucket arrives;
    the value reported on each 1-minute bar treats the forming bucket's latest close as the newest
    point (what a chart shows for the current higher-timeframe bar), so it is causal and needs no
    look-ahead.
    """

    __slots__ = ("ema", "key", "close")

    def __init__(self, n: int) -> None:
        self.ema = _Ema(n)
        self.key: int | None = None
        self.close = NAN

    def push(self, key: int, close: float) -> float:
        if self.key is not None and key != self.key:
            self.ema.push(self.close)
        self.key = key
        self.close = close
        ema = self.ema
        if ema.count >= ema.n:
            return ema.value + ema.k * (close - ema.value)
        if ema.count == ema.n - 1:
            return (ema.seed_sum + close) / ema.n
        return NAN


def _finite(*values: float) -> bool:
    return all(v == v for v in values)


class FeatureEngine:
    """Feature state of one symbol; feed it every stored bar in time order with `update`."""

    def __init__(
        self,
        symbol: str,
        *,
        lookback_days: int = 120,
        lookback_min: int = 180,
        rvol_profile_min_sessions: int = 5,
        library=None,
        on_row=None,
    ) -> None:
        """`library`: a `strategies.features.library.FeatureLibrary` adding the extra features
        setups name to each row; `on_row(row)`: called with every finished row (the setups'
        per-bar evaluators keep their history state there)."""
        self.symbol = symbol
        self.library = library if library else None
        self.on_row = on_row
        self.lookback_days = lookback_days
        self.lookback_min = lookback_min
        self.rvol_profile_min_sessions = rvol_profile_min_sessions
        self.last_ts: datetime | None = None  # last bar fed (any session)
        self.last_close = NAN
        self.last_row: dict | None = None  # features of the last regular-session bar
        self.bars = 0
        self._ema20 = _Ema(20)
        self._ema50 = _Ema(50)
        self._ema20_hist: deque[float] = deque(maxlen=6)
        self._atr = _Ema(14, alpha=1.0 / 14)
        self._prev_close = NAN
        self._prev_day_close = NAN
        self._e5_20 = _HigherTimeframeEma(20)
        self._e5_50 = _HigherTimeframeEma(50)
        self._e15_20 = _HigherTimeframeEma(20)
        self._e15_50 = _HigherTimeframeEma(50)
        # session state
        self._day = None
        self._ref = 0.0
        self._cum_v = 0.0
        self._cum_vx = 0.0
        self._cum_vx2 = 0.0
        self._hod = NAN
        self._lod = NAN
        self._or_high = NAN
        self._or_low = NAN
        self._profile_minutes: list[int] = []
        self._profile_cum: list[float] = []
        # rvol history
        self._profiles: deque[np.ndarray] = deque()
        self._profile_sum = np.zeros(FULL_SESSION_MINUTES)
        self._trail: deque[float] = deque()
        self._trail_sum = 0.0

    # --- session boundary -------------------------------------------------------------------
    def _close_session(self) -> None:
        """Fold the finished session's cumulative-volume curve into the time-of-day profile."""
        if self._day is None:
            return
        # cumulative volume at each minute of the day, carried forward over gaps and after an
        # early close; 0 before the session's first bar
        minutes = np.asarray(self._profile_minutes)
        cums = np.concatenate(([0.0], np.asarray(self._profile_cum, dtype=float)))
        curve = cums[np.searchsorted(minutes, _MINUTES, side="right")]
        self._profiles.append(curve)
        self._profile_sum += curve
        if len(self._profiles) > self.lookback_days:
            self._profile_sum -= self._profiles.popleft()
        self._prev_day_close = self._prev_close

    def _open_session(self, day, typical: float) -> None:
        self._close_session()
        self._day = day
        self._ref = typical
        self._cum_v = self._cum_vx = self._cum_vx2 = 0.0
        self._hod = self._lod = NAN
        self._or_high = self._or_low = NAN
        self._profile_minutes = []
        self._profile_cum = []

    # --- the per-bar update -----------------------------------------------------------------
    def update(
        self,
        ts: datetime,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> dict | None:
        """Advance by one bar (its START `ts`, tz-aware); returns the feature row, or None when
        the bar is outside the regular session (ignored)."""
        self.last_ts = ts
        self.last_close = close
        where = session_minute(ts)
        if where is None:
            if self.library is not None and self.library.premarket:
                local = ts.astimezone(ET)
                self.library.outside(local.date(), local.hour * 60 + local.minute, high, low)
            return None
        sd, minute = where
        volume = volume if volume == volume and volume > 0 else 0.0
        typical = (high + low + close) / 3.0
        if sd.day != self._day:
            self._open_session(sd.day, typical)
        self.bars += 1

        ema20 = self._ema20.push(close)
        ema50 = self._ema50.push(close)
        prev = self.last_row
        ema20_prev = prev["ema_20"] if prev is not None else NAN
        ema50_prev = prev["ema_50"] if prev is not None else NAN
        hist = self._ema20_hist
        hist.append(ema20)
        slope = ema20 / hist[0] - 1.0 if len(hist) == 6 and _finite(hist[0], ema20) else NAN

        pc = self._prev_close
        if pc == pc:
            tr = max(high - low, abs(high - pc), abs(low - pc))
        else:
            tr = high - low
        atr = self._atr.push(tr)

        # session VWAP around a reference price (first typical price) to keep the variance
        # sum well conditioned
        x = typical - self._ref
        self._cum_v += volume
        self._cum_vx += volume * x
        self._cum_vx2 += volume * x * x
        cum_v = self._cum_v
        if cum_v > 0:
            mean_x = self._cum_vx / cum_v
            vwap = self._ref + mean_x
            sigma = math.sqrt(max(self._cum_vx2 / cum_v - mean_x * mean_x, 0.0))
        else:
            vwap = sigma = NAN

        self._hod = high if not self._hod >= high else self._hod
        self._lod = low if not self._lod <= low else self._lod
        if minute < OPENING_RANGE_MINUTES:
            self._or_high = high if not self._or_high >= high else self._or_high
            self._or_low = low if not self._or_low <= low else self._or_low
        or_ready = minute >= OPENING_RANGE_MINUTES - 1
        or_high = self._or_high if or_ready else NAN
        or_low = self._or_low if or_ready else NAN

        # relative volume
        self._profile_minutes.append(minute)
        self._profile_cum.append(cum_v)
        n_hist = len(self._profiles)
        rvol, method = NAN, ""
        if n_hist >= self.rvol_profile_min_sessions:
            method = "profile"
            denom = self._profile_sum[minute] / n_hist
            if denom > 0:
                rvol = cum_v / denom
        elif len(self._trail) >= min(TRAILING_MIN_BARS, self.lookback_min):
            method = "trailing"
            mean = self._trail_sum / len(self._trail)
            if mean > 0:
                rvol = volume / mean
        self._trail.append(volume)
        self._trail_sum += volume
        if len(self._trail) > self.lookback_min:
            self._trail_sum -= self._trail.popleft()

        day_key = sd.day.toordinal() * 1000
        e5_20 = self._e5_20.push(day_key + minute // 5, close)
        e5_50 = self._e5_50.push(day_key + minute // 5, close)
        e15_20 = self._e15_20.push(day_key + minute // 15, close)
        e15_50 = self._e15_50.push(day_key + minute // 15, close)
        if _finite(e5_20, e5_50, e15_20, e15_50, slope):
            regime = ((e5_20 / e5_50 - 1.0) + (e15_20 / e15_50 - 1.0) + slope) / 3.0
        else:
            regime = NAN

        row = {
            "ts": ts,
            "session_date": sd.day,
            "minute": minute,
            "session_minutes": sd.minutes,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "ema_20": ema20,
            "ema_50": ema50,
            "ema_20_prev": ema20_prev,
            "ema_50_prev": ema50_prev,
            "ema_20_slope": slope,
            "vwap": vwap,
            "vwap_sigma": sigma,
            "vwap_upper_1": vwap + sigma,
            "vwap_lower_1": vwap - sigma,
            "vwap_upper_2": vwap + 2.0 * sigma,
            "vwap_lower_2": vwap - 2.0 * sigma,
            "atr_14": atr,
            "rvol": rvol,
            "rvol_method": method,
            "hod": self._hod,
            "lod": self._lod,
            "or_high": or_high,
            "or_low": or_low,
            "prev_close": pc,
            "prev_day_close": self._prev_day_close,
            "ema5m_20": e5_20,
            "ema5m_50": e5_50,
            "ema15m_20": e15_20,
            "ema15m_50": e15_50,
            "regime_score": regime,
        }
        self._prev_close = close
        if self.library is not None:
            self.library.push(row)
        if self.on_row is not None:
            self.on_row(row)
        self.last_row = row
        return row
