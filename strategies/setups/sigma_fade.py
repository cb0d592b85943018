"""SIGMA_FADE: close <= vwap - SIGMA_FADE_BAND_K*sigma, rvol >= SIGMA_FADE_MIN_RVOL and the
trend is not down (not ema_20 < ema_50)."""

from __future__ import annotations

from strategies.config import StrategyConfig
from strategies.setups.base import (
    Decision,
    SetupContext,
    fired,
    fmt,
    missing,
    not_fired,
    warming_up,
)

NAME = "SIGMA_FADE"


def evaluate(f: dict, ctx: SetupContext, cfg: StrategyConfig) -> Decision:
    lacking = missing(f, "vwap", "vwap_sigma", "rvol", "ema_20", "ema_50", "atr_14")
    if lacking:
        return warming_up(NAME, lacking)
    reasons = []
    band = f["vwap"] - cfg.sigma_fade_band_k * f["vwap_sigma"]
    if not f["close"] <= band:
        reasons.append(
            f"close {fmt(f['close'])} above the lower band {fmt(band)}"
            f" (vwap - {cfg.sigma_fade_band_k} sigma)"
        )
    if not f["rvol"] >= cfg.sigma_fade_min_rvol:
        reasons.append(f"rvol {fmt(f['rvol'])} below {cfg.sigma_fade_min_rvol}")
    if f["ema_20"] < f["ema_50"]:
        reasons.append(f"down-trend: ema_20 {fmt(f['ema_20'])} < ema_50 {fmt(f['ema_50'])}")
    if reasons:
        return not_fired(NAME, reasons)
    return fired(NAME, f, cfg, "close swept the lower sigma band without a down-trend")
