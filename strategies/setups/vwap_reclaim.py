"""VWAP_RECLAIM: prev_close < vwap < close, ema_20 > ema_50, slope > 0, rvol >= VWAP_MIN_RVOL;
symbols in POWER_HOUR_SYMBOLS only from POWER_HOUR_START (bar close time, New York)."""

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

NAME = "VWAP_RECLAIM"


def evaluate(f: dict, ctx: SetupContext, cfg: StrategyConfig) -> Decision:
    lacking = missing(f, "prev_close", "vwap", "ema_20", "ema_50", "ema_20_slope", "rvol", "atr_14")
    if lacking:
        return warming_up(NAME, lacking)
    reasons = []
    if ctx.symbol in cfg.power_hour_symbols and ctx.close_et.time() < cfg.power_hour_start:
        reasons.append(
            f"{ctx.symbol} trades this setup only from {cfg.power_hour_start:%H:%M} (power hour)"
        )
    if not (f["prev_close"] < f["vwap"] < f["close"]):
        reasons.append(
            f"no reclaim: prev_close {fmt(f['prev_close'])}, vwap {fmt(f['vwap'])},"
            f" close {fmt(f['close'])}"
        )
    if not f["ema_20"] > f["ema_50"]:
        reasons.append(f"ema_20 {fmt(f['ema_20'])} not above ema_50 {fmt(f['ema_50'])}")
    if not f["ema_20_slope"] > 0:
        reasons.append(f"ema_20 slope {fmt(f['ema_20_slope'])} not positive")
    if not f["rvol"] >= cfg.vwap_min_rvol:
        reasons.append(f"rvol {fmt(f['rvol'])} below {cfg.vwap_min_rvol}")
    if reasons:
        return not_fired(NAME, reasons)
    return fired(NAME, f, cfg, "close reclaimed vwap in an up-trend on volume")
