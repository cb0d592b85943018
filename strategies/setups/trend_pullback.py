"""TREND_PULLBACK: in an up regime (regime >= TREND_PULLBACK_MIN_REGIME, 5-minute ema20 > ema50)
the close pulls back to at most TREND_PULLBACK_MAX_ATR*ATR below ema_20 (0 <= ema_20 - close),
with rvol >= TREND_PULLBACK_MIN_RVOL."""

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

NAME = "TREND_PULLBACK"


def evaluate(f: dict, ctx: SetupContext, cfg: StrategyConfig) -> Decision:
    lacking = missing(f, "regime_score", "ema5m_20", "ema5m_50", "ema_20", "atr_14", "rvol")
    if lacking:
        return warming_up(NAME, lacking)
    reasons = []
    if not f["regime_score"] >= cfg.trend_pullback_min_regime:
        reasons.append(f"regime {fmt(f['regime_score'])} below {cfg.trend_pullback_min_regime}")
    if not f["ema5m_20"] > f["ema5m_50"]:
        reasons.append(f"5m ema20 {fmt(f['ema5m_20'])} not above 5m ema50 {fmt(f['ema5m_50'])}")
    depth = f["ema_20"] - f["close"]
    limit = cfg.trend_pullback_max_atr * f["atr_14"]
    if not (0 <= depth <= limit):
        reasons.append(
            f"ema_20 - close = {fmt(depth)} outside [0, {cfg.trend_pullback_max_atr} ATR"
            f" = {fmt(limit)}]"
        )
    if not f["rvol"] >= cfg.trend_pullback_min_rvol:
        reasons.append(f"rvol {fmt(f['rvol'])} below {cfg.trend_pullback_min_rvol}")
    if reasons:
        return not_fired(NAME, reasons)
    return fired(NAME, f, cfg, "pulled back to ema_20 in an up-trend")
