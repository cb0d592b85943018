"""ORB: opening-range breakout between ORB_START and ORB_END (bar close time, New York):
regime >= ORB_MIN_REGIME, close > or_high + ORB_BREAKOUT_ATR*ATR, rvol >= ORB_MIN_RVOL,
5-minute ema20 > ema50; stop = or_high - ORB_STOP_ATR*ATR."""

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

NAME = "ORB"


def evaluate(f: dict, ctx: SetupContext, cfg: StrategyConfig) -> Decision:
    t = ctx.close_et.time()
    if not (cfg.orb_start <= t <= cfg.orb_end):
        return not_fired(NAME, [f"{t:%H:%M} outside {cfg.orb_start:%H:%M}-{cfg.orb_end:%H:%M}"])
    lacking = missing(f, "or_high", "atr_14", "regime_score", "rvol", "ema5m_20", "ema5m_50")
    if lacking:
        return warming_up(NAME, lacking)
    reasons = []
    if not f["regime_score"] >= cfg.orb_min_regime:
        reasons.append(f"regime {fmt(f['regime_score'])} below {cfg.orb_min_regime}")
    trigger = f["or_high"] + cfg.orb_breakout_atr * f["atr_14"]
    if not f["close"] > trigger:
        reasons.append(
            f"close {fmt(f['close'])} not above or_high + {cfg.orb_breakout_atr} ATR"
            f" ({fmt(trigger)})"
        )
    if not f["rvol"] >= cfg.orb_min_rvol:
        reasons.append(f"rvol {fmt(f['rvol'])} below {cfg.orb_min_rvol}")
    if not f["ema5m_20"] > f["ema5m_50"]:
        reasons.append(f"5m ema20 {fmt(f['ema5m_20'])} not above 5m ema50 {fmt(f['ema5m_50'])}")
    if reasons:
        return not_fired(NAME, reasons)
    return fired(
        NAME,
        f,
        cfg,
        "broke out above the opening range on volume",
        stop=f["or_high"] - cfg.orb_stop_atr * f["atr_14"],
    )
