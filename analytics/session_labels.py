"""Trend vs balance: one label per regular session, from that session's regime statistics.

A trend day travels: price moves efficiently in one direction, the range extends well beyond
the opening hour's range (the initial balance) and the close sits near an extreme. A balance day
rotates around its value area. Each statistic is stored with the label so a trader can see why.

Statistics (regular-session 1-minute bars only):
- `efficiency`: |close − open| / Σ|Δclose| (Kaufman efficiency ratio, 0..1).
- `range_ib_ratio`: session range / initial-balance range (09:30–10:30 ET).
- `close_location`: (close − low) / (high − low), 0 at the low, 1 at the high.
- `regime_share`: share of bars whose 5-minute EMA20 sits on the side of EMA50 that agrees with
  the day's direction (the higher-timeframe regime the setups read).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from analytics.bars import MARKET_TZ

TREND = "trend"
BALANCE = "balance"
INITIAL_BALANCE_MINUTES = 60


@dataclass(frozen=True)
class LabelRules:
    """A session is a trend day when every threshold is met; otherwise balance."""

    min_efficiency: float = 0.08
    min_range_ib_ratio: float = 1.5
    extreme_close: float = 0.25  # close within this fraction of the range from an extreme
    min_regime_share: float = 0.6
    min_bars: int = 60


def _ema(values: np.ndarray, span: int) -> np.ndarray:
    """EMA seeded with the simple mean of the first `span` values (NaN before)."""
    out = np.full(values.shape, np.nan)
    if values.size < span:
        return out
    k = 2.0 / (span + 1)
    level = float(values[:span].mean())
    out[span - 1] = level
    for i in range(span, values.size):
        level += k * (values[i] - level)
        out[i] = level
    return out


def session_statistics(session_bars: pd.DataFrame) -> dict:
    """Regime statistics of one session's regular bars (time-ordered)."""
    close = session_bars["close"].to_numpy(dtype=float)
    high = float(session_bars["high"].max())
    low = float(session_bars["low"].min())
    first_open = float(session_bars["open"].iloc[0])
    last_close = float(close[-1])
    path = float(np.abs(np.diff(np.concatenate(([first_open], close)))).sum())
    move = last_close - first_open
    local = session_bars.index.tz_convert(MARKET_TZ)
    minutes = (local.hour * 60 + local.minute) - (9 * 60 + 30)
    ib = session_bars[np.asarray(minutes < INITIAL_BALANCE_MINUTES)]
    ib_range = float(ib["high"].max() - ib["low"].min()) if len(ib) else 0.0
    day_range = high - low
    five = session_bars["close"].resample("5min", label="left", closed="left").last().dropna()
    spread = _ema(five.to_numpy(), 20) - _ema(five.to_numpy(), 50)
    valid = spread[~np.isnan(spread)]
    direction = 1 if move > 0 else -1 if move < 0 else 0
    regime_share = float(np.mean(np.sign(valid) == direction)) if valid.size and direction else 0.0
    return {
        "bars": int(len(session_bars)),
        "open": first_open,
        "close": last_close,
        "high": high,
        "low": low,
        "direction": "up" if direction > 0 else "down" if direction < 0 else "flat",
        "efficiency": abs(move) / path if path > 0 else 0.0,
        "range_ib_ratio": day_range / ib_range if ib_range > 0 else 0.0,
        "close_location": (last_close - low) / day_range if day_range > 0 else 0.5,
        "regime_share": regime_share,
        "regime_bars": int(valid.size),
    }


def label_for(stats: dict, rules: LabelRules = LabelRules()) -> str:
    if stats["bars"] < rules.min_bars:
        return BALANCE
    location = stats["close_location"]
    near_extreme = (stats["direction"] == "up" and location >= 1 - rules.extreme_close) or (
        stats["direction"] == "down" and location <= rules.extreme_close
    )
    regime_ok = stats["regime_bars"] == 0 or stats["regime_share"] >= rules.min_regime_share
    is_trend = (
        stats["efficiency"] >= rules.min_efficiency
        and stats["range_ib_ratio"] >= rules.min_range_ib_ratio
        and near_extreme
        and regime_ok
    )
    return TREND if is_trend else BALANCE


def label_sessions(frame: pd.DataFrame, rules: LabelRules = LabelRules()) -> dict[date, dict]:
    """Label every regular session in a bars frame (see analytics.bars): date → {label, stats}."""
    regular = frame[frame["regular"].to_numpy()]
    out: dict[date, dict] = {}
    for day, bars in regular.groupby("session", sort=True):
        stats = session_statistics(bars)
        stats = {k: round(v, 6) if isinstance(v, float) else v for k, v in stats.items()}
        out[day] = {"label": label_for(stats, rules), "stats": stats}
    return out
