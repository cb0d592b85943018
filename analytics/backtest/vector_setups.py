"""The seven setups as boolean arrays over a vectorised feature frame (fast mode).

Each mask is the array twin of one `strategies.setups.<name>.evaluate`: a bar fires when every
input that setup checks for warm-up is available and every condition holds. The fast-vs-event
equality tests pin the two together; a change to a setup must be mirrored here.
`setup_signals` adds each setup's own stop and targets as arrays (CONTRACTS.md item 3): the
fast kernel consumes them and never knows a setup's formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from strategies.config import StrategyConfig


@dataclass(frozen=True)
class SetupArrays:
    """One setup over a feature frame: where it fires (before cooldown) and the stop and
    targets it would set on each bar (entry = the bar's close)."""

    fire: np.ndarray  # bool
    stop: np.ndarray  # float
    t1: np.ndarray
    t2: np.ndarray


def _finite(frame: pd.DataFrame, *names: str) -> np.ndarray:
    out = np.ones(len(frame), dtype=bool)
    for name in names:
        out &= ~np.isnan(frame[name].to_numpy(dtype=float))
    return out


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=float)


def close_minutes_et(index: pd.DatetimeIndex) -> np.ndarray:
    """Minutes since midnight (New York) of each bar's close (= decision time)."""
    local = (index + pd.Timedelta(minutes=1)).tz_convert("America/New_York")
    return np.asarray(local.hour * 60 + local.minute, dtype=np.int64)


def _minutes(t) -> int:
    return t.hour * 60 + t.minute


def setup_masks(
    features: pd.DataFrame, *, symbol: str, cfg: StrategyConfig
) -> dict[str, np.ndarray]:
    """setup name → bool array: where that setup fires (before cooldown), for enabled setups."""
    f = features
    close = _col(f, "close")
    ema20, ema50 = _col(f, "ema_20"), _col(f, "ema_50")
    atr = _col(f, "atr_14")
    vwap, rvol = _col(f, "vwap"), _col(f, "rvol")
    tod = close_minutes_et(f.index)
    with np.errstate(invalid="ignore"):
        masks: dict[str, np.ndarray] = {}
        for name in cfg.enabled_setups:
            if name == "EMA_CROSS":
                ready = _finite(f, "ema_20", "ema_50", "ema_20_prev", "ema_50_prev", "atr_14")
                cross = (_col(f, "ema_20_prev") <= _col(f, "ema_50_prev")) & (ema20 > ema50)
                mask = ready & cross & (close > ema50)
            elif name == "VWAP_RECLAIM":
                ready = _finite(
                    f, "prev_close", "vwap", "ema_20", "ema_50", "ema_20_slope", "rvol", "atr_14"
                )
                prev = _col(f, "prev_close")
                mask = (
                    ready
                    & (prev < vwap)
                    & (vwap < close)
                    & (ema20 > ema50)
                    & (_col(f, "ema_20_slope") > 0)
                    & (rvol >= cfg.vwap_min_rvol)
                )
                if symbol in cfg.power_hour_symbols:
                    mask &= tod >= _minutes(cfg.power_hour_start)
            elif name == "SIGMA_FADE":
                ready = _finite(f, "vwap", "vwap_sigma", "rvol", "ema_20", "ema_50", "atr_14")
                band = vwap - cfg.sigma_fade_band_k * _col(f, "vwap_sigma")
                mask = (
                    ready & (close <= band) & (rvol >= cfg.sigma_fade_min_rvol) & ~(ema20 < ema50)
                )
            elif name == "HOD_FAIL":
                ready = _finite(f, "hod", "vwap", "atr_14", "ema_20", "ema_50")
                mask = (
                    ready
                    & (_col(f, "hod") - close >= cfg.hod_fail_min_atr * atr)
                    & (close >= vwap)
                    & ~(ema20 < ema50)
                )
            elif name == "ORB":
                ready = _finite(
                    f, "or_high", "atr_14", "regime_score", "rvol", "ema5m_20", "ema5m_50"
                )
                window = (tod >= _minutes(cfg.orb_start)) & (tod <= _minutes(cfg.orb_end))
                mask = (
                    window
                    & ready
                    & (_col(f, "regime_score") >= cfg.orb_min_regime)
                    & (close > _col(f, "or_high") + cfg.orb_breakout_atr * atr)
                    & (rvol >= cfg.orb_min_rvol)
                    & (_col(f, "ema5m_20") > _col(f, "ema5m_50"))
                )
            elif name == "TREND_PULLBACK":
                ready = _finite(
                    f, "regime_score", "ema5m_20", "ema5m_50", "ema_20", "atr_14", "rvol"
                )
                depth = ema20 - close
                mask = (
                    ready
                    & (_col(f, "regime_score") >= cfg.trend_pullback_min_regime)
                    & (_col(f, "ema5m_20") > _col(f, "ema5m_50"))
                    & (depth >= 0)
                    & (depth <= cfg.trend_pullback_max_atr * atr)
                    & (rvol >= cfg.trend_pullback_min_rvol)
                )
            elif name == "VWAP_MEAN":
                ready = _finite(f, "regime_score", "vwap", "atr_14", "rvol")
                mask = (
                    ready
                    & (_col(f, "regime_score") >= cfg.vwap_mean_min_regime)
                    & (vwap - close >= cfg.vwap_mean_min_atr * atr)
                    & (rvol >= cfg.vwap_mean_min_rvol)
                )
            else:  # a setup this module does not know: never silently approximate it
                raise KeyError(f"fast mode has no vectorised twin of setup {name}")
            masks[name] = np.asarray(mask, dtype=bool)
    return masks


def setup_levels(name: str, features: pd.DataFrame, cfg: StrategyConfig):
    """(stop, t1, t2) arrays of setup `name` on every bar: the formulas of
    `strategies.setups.<name>` (the fast-vs-event tests pin the two together)."""
    close, atr = _col(features, "close"), _col(features, "atr_14")
    if name == "ORB":
        stop = _col(features, "or_high") - cfg.orb_stop_atr * atr
    else:
        stop = close - cfg.stop_atr * atr
    if name == "VWAP_MEAN":
        vwap = _col(features, "vwap")
        t1, t2 = vwap, vwap + cfg.vwap_mean_t2_atr * atr
    else:
        t1, t2 = close + cfg.target_one_atr * atr, close + cfg.target_two_atr * atr
    return stop, t1, t2


def setup_signals(
    features: pd.DataFrame, cfg: StrategyConfig, *, symbol: str
) -> dict[str, SetupArrays]:
    """setup name -> SetupArrays for the enabled setups (features with a `close` column)."""
    out = {}
    for name, fire in setup_masks(features, symbol=symbol, cfg=cfg).items():
        stop, t1, t2 = setup_levels(name, features, cfg)
        out[name] = SetupArrays(fire=fire, stop=stop, t1=t1, t2=t2)
    return out
