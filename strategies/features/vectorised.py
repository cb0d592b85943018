"""The vectorised twin of `FeatureEngine`: the same definitions over a whole DataFrame at once,
for analytics and backtests. Tests pin it equal to the incremental engine bar for bar.

Input: index of tz-aware UTC bar-START timestamps, columns open, high, low, close, volume.
Output: the same index with the feature columns of `FEATURE_COLUMNS` (+ ema_20_prev, ema_50_prev,
rvol_method, in_session, session_minute); rows outside the regular session (pre/post-market, see
`sessions.py`) and rows still warming up hold NaN.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from strategies.features.engine import TRAILING_MIN_BARS
from strategies.features.sessions import (
    FULL_SESSION_MINUTES,
    OPENING_RANGE_MINUTES,
    session_day,
)

_DEFAULTS = {"lookback_days": 120, "lookback_min": 180, "rvol_profile_min_sessions": 5}


def _settings_defaults() -> dict:
    try:
        from django.conf import settings

        return {
            "lookback_days": settings.LOOKBACK_DAYS,
            "lookback_min": settings.LOOKBACK_MIN,
            "rvol_profile_min_sessions": getattr(settings, "RVOL_PROFILE_MIN_SESSIONS", 5),
        }
    except Exception:  # outside Django: the documented defaults
        return dict(_DEFAULTS)


def ema_seeded(x: np.ndarray, n: int, alpha: float | None = None) -> np.ndarray:
    """EMA with k = 2/(n+1) (or `alpha`) seeded with the mean of the first n values; NaN before.
    The same arithmetic, in the same order, as the engine's `_Ema` (numba kernel)."""
    from strategies.features.kernels import ema_seeded as kernel

    k = 2.0 / (n + 1) if alpha is None else alpha
    return kernel(np.ascontiguousarray(x, dtype=float), n, k)


def _higher_timeframe_ema(keys: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Per 1-minute row: EMA of finished n-minute closes with the forming bucket's close as the
    newest point (see engine._HigherTimeframeEma)."""
    if len(keys) == 0:
        return np.array([])
    new_bucket = np.r_[True, keys[1:] != keys[:-1]]
    bucket = np.cumsum(new_bucket) - 1  # bucket index of each row == finished buckets before it
    last_of_bucket = np.r_[new_bucket[1:], True]
    finals = close[last_of_bucket]
    e = ema_seeded(finals, n)
    k = 2.0 / (n + 1)
    out = np.full(len(close), np.nan)
    full = bucket >= n
    prev_e = e[bucket[full] - 1]
    out[full] = prev_e + k * (close[full] - prev_e)
    if len(finals) >= n - 1:
        seed_sum = np.cumsum(finals)[n - 2] if n >= 2 else 0.0
        at_seed = bucket == n - 1
        out[at_seed] = (seed_sum + close[at_seed]) / n
    return out


def compute_features(
    bars: pd.DataFrame,
    *,
    lookback_days: int | None = None,
    lookback_min: int | None = None,
    rvol_profile_min_sessions: int | None = None,
    features=(),
) -> pd.DataFrame:
    """Features of DESIGN §3 for every bar of `bars` (see module docstring), plus the bar's
    own open/high/low/close/volume, the day's pre-market high/low and the library features
    named in `features` (`strategies.features.library`)."""
    params = _settings_defaults()
    if lookback_days is not None:
        params["lookback_days"] = lookback_days
    if lookback_min is not None:
        params["lookback_min"] = lookback_min
    if rvol_profile_min_sessions is not None:
        params["rvol_profile_min_sessions"] = rvol_profile_min_sessions
    missing_cols = {"open", "high", "low", "close", "volume"} - set(bars.columns)
    if missing_cols:
        raise ValueError(f"bars lack columns {sorted(missing_cols)}")
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError("bars need a tz-aware DatetimeIndex of bar start times")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError("bar timestamps must be strictly increasing")

    out = pd.DataFrame(index=index)
    n_all = len(index)
    idx_utc = index.tz_convert("UTC").as_unit("ns")
    # New York dates as day numbers (per-row Python date objects cost ~2 µs a bar)
    wall = idx_utc.tz_convert("America/New_York").tz_localize(None).as_unit("ns").asi8
    day_num, day_of_row = np.unique(wall // 86_400_000_000_000, return_inverse=True)
    day_info = [session_day(date(1970, 1, 1) + timedelta(days=int(d))) for d in day_num]
    open_ns = np.array([pd.Timestamp(i.open_utc).value for i in day_info], dtype="int64")
    open_ns = open_ns[day_of_row] if n_all else np.zeros(0, dtype="int64")
    length = np.array([i.minutes for i in day_info], dtype="int64")
    length = length[day_of_row] if n_all else np.zeros(0, dtype="int64")
    et_ordinal = (day_num + date(1970, 1, 1).toordinal())[day_of_row]  # date.toordinal()
    minute_all = (idx_utc.asi8 - open_ns) // 60_000_000_000
    regular = (minute_all >= 0) & (minute_all < length)

    cols = {}
    r = np.flatnonzero(regular)
    h = bars["high"].to_numpy(float)[r]
    lo = bars["low"].to_numpy(float)[r]
    c = bars["close"].to_numpy(float)[r]
    v = bars["volume"].to_numpy(float)[r]
    v = np.where(np.isfinite(v) & (v > 0), v, 0.0)
    minute = minute_all[r]
    ordinals = et_ordinal[r].astype("int64")
    _, sess = np.unique(ordinals, return_inverse=True)
    sess = sess.astype("int64")
    n = len(r)

    ema20 = ema_seeded(c, 20)
    ema50 = ema_seeded(c, 50)
    cols["ema_20"], cols["ema_50"] = ema20, ema50
    cols["ema_20_prev"] = np.r_[np.nan, ema20[:-1]] if n else ema20
    cols["ema_50_prev"] = np.r_[np.nan, ema50[:-1]] if n else ema50
    ema20_5 = np.r_[np.full(min(5, n), np.nan), ema20[:-5]] if n > 5 else np.full(n, np.nan)
    cols["ema_20_slope"] = ema20 / ema20_5 - 1.0

    pc = np.r_[np.nan, c[:-1]] if n else c
    tr = np.fmax(h - lo, np.fmax(np.abs(h - pc), np.abs(lo - pc)))
    cols["atr_14"] = ema_seeded(tr, 14, alpha=1.0 / 14)
    cols["prev_close"] = pc

    typical = (h + lo + c) / 3.0
    first_of_session = np.r_[True, sess[1:] != sess[:-1]] if n else np.array([], bool)
    starts = np.flatnonzero(first_of_session)
    ref = typical[starts][sess]
    x = typical - ref
    g = pd.Series(sess)
    from strategies.features.kernels import session_cumsum

    cum_v = session_cumsum(np.ascontiguousarray(v), first_of_session)
    cum_vx = session_cumsum(np.ascontiguousarray(v * x), first_of_session)
    cum_vx2 = session_cumsum(np.ascontiguousarray(v * x * x), first_of_session)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_x = np.where(cum_v > 0, cum_vx / cum_v, np.nan)
        vwap = ref + mean_x
        sigma = np.sqrt(np.maximum(cum_vx2 / cum_v - mean_x * mean_x, 0.0))
    sigma = np.where(cum_v > 0, sigma, np.nan)
    cols["vwap"], cols["vwap_sigma"] = vwap, sigma
    cols["vwap_upper_1"], cols["vwap_lower_1"] = vwap + sigma, vwap - sigma
    cols["vwap_upper_2"], cols["vwap_lower_2"] = vwap + 2.0 * sigma, vwap - 2.0 * sigma

    cols["hod"] = pd.Series(h).groupby(g).cummax().to_numpy()
    cols["lod"] = pd.Series(lo).groupby(g).cummin().to_numpy()
    in_or = minute < OPENING_RANGE_MINUTES
    or_h = pd.Series(np.where(in_or, h, np.nan)).groupby(g).cummax().groupby(g).ffill()
    or_l = pd.Series(np.where(in_or, lo, np.nan)).groupby(g).cummin().groupby(g).ffill()
    ready = minute >= OPENING_RANGE_MINUTES - 1
    cols["or_high"] = np.where(ready, or_h.to_numpy(), np.nan)
    cols["or_low"] = np.where(ready, or_l.to_numpy(), np.nan)

    n_sess = int(sess.max()) + 1 if n else 0
    last_close = np.full(n_sess, np.nan)
    if n:
        ends = np.r_[starts[1:] - 1, n - 1]
        last_close = c[ends]
    prev_day = np.r_[np.nan, last_close[:-1]] if n_sess else last_close
    cols["prev_day_close"] = prev_day[sess] if n else np.array([])

    # relative volume: time-of-day profile of cumulative volume, trailing fallback
    rvol = np.full(n, np.nan)
    method = np.full(n, "", dtype=object)
    if n:
        curves = np.full((n_sess, FULL_SESSION_MINUTES), np.nan)
        curves[sess, minute] = cum_v
        curves = pd.DataFrame(curves).ffill(axis=1).fillna(0.0).to_numpy()
        csum = np.vstack([np.zeros(FULL_SESSION_MINUTES), np.cumsum(curves, axis=0)])
        lb = params["lookback_days"]
        s_idx = np.arange(n_sess)
        lo_idx = np.maximum(0, s_idx - lb)
        window = csum[s_idx] - csum[lo_idx]
        n_hist = s_idx - lo_idx
        nh = n_hist[sess]
        use_profile = nh >= params["rvol_profile_min_sessions"]
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = window[sess, minute] / nh
            prof = np.where(denom > 0, cum_v / denom, np.nan)
        L = params["lookback_min"]
        trail = (
            pd.Series(v).shift(1).rolling(L, min_periods=min(TRAILING_MIN_BARS, L)).mean()
        ).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            trail_rvol = np.where(trail > 0, v / trail, np.nan)
        has_trail = ~np.isnan(trail)
        rvol = np.where(use_profile, prof, np.where(has_trail, trail_rvol, np.nan))
        method = np.where(use_profile, "profile", np.where(has_trail, "trailing", ""))
    cols["rvol"] = rvol

    ordinal = ordinals * 1000
    k5 = ordinal + minute // 5
    k15 = ordinal + minute // 15
    cols["ema5m_20"] = _higher_timeframe_ema(k5, c, 20)
    cols["ema5m_50"] = _higher_timeframe_ema(k5, c, 50)
    cols["ema15m_20"] = _higher_timeframe_ema(k15, c, 20)
    cols["ema15m_50"] = _higher_timeframe_ema(k15, c, 50)
    cols["regime_score"] = (
        (cols["ema5m_20"] / cols["ema5m_50"] - 1.0)
        + (cols["ema15m_20"] / cols["ema15m_50"] - 1.0)
        + cols["ema_20_slope"]
    ) / 3.0

    # pre-market (04:00-09:30 New York) high/low of each regular row's day
    wall_min = (wall // 60_000_000_000) % 1440
    pre = (wall_min >= 240) & (wall_min < 570)
    pre_h = np.full(len(day_num), np.nan)
    pre_l = np.full(len(day_num), np.nan)
    if pre.any():
        hi_all = bars["high"].to_numpy(float)
        lo_all = bars["low"].to_numpy(float)
        np.fmax.at(pre_h, day_of_row[pre], hi_all[pre])
        np.fmin.at(pre_l, day_of_row[pre], lo_all[pre])
    cols["premarket_high"] = pre_h[day_of_row[r]]
    cols["premarket_low"] = pre_l[day_of_row[r]]
    cols["open"], cols["high"], cols["low"] = bars["open"].to_numpy(float)[r], h, lo
    cols["close"], cols["volume"] = c, v
    cols["minute"] = minute.astype(float)
    if features:
        from strategies.features.library import specs_for, vector_column

        lib_in = {**cols, "_sess": sess, "_pre_high": cols["premarket_high"]}
        lib_in["_pre_low"] = cols["premarket_low"]
        for spec in specs_for(features):
            cols.update(vector_column(spec, lib_in))

    for name, values in cols.items():
        full = np.full(n_all, np.nan)
        full[r] = values
        out[name] = full
    method_full = np.full(n_all, "", dtype=object)
    method_full[r] = method
    out["rvol_method"] = method_full
    out["in_session"] = regular
    minute_full = np.full(n_all, np.nan)
    minute_full[r] = minute
    out["session_minute"] = minute_full
    return out
