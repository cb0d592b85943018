"""HOD_FAIL: a pullback from the high of day of at least HOD_FAIL_MIN_ATR*ATR while the close
holds vwap and the trend is not down."""

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

NAME = "HOD_FAIL"


def evaluate(f: dict, ctx: SetupContext, cfg: StrategyConfig) -> Decision:
    lacking = missing(f, "hod", "vwap", "atr_14", "ema_20", "ema_50")
    if lacking:
        return warming_up(NAME, lacking)
    reasons = []
    pullback = f["hod"] - f["close"]
    need = cfg.hod_fail_min_atr * f["atr_14"]
    if not pullback >= need:
        reasons.append(
            f"pullback from hod {fmt(pullback)} smaller than {cfg.hod_fail_min_atr} ATR"
            f" ({fmt(need)})"
        )
    if not f["close"] >= f["vwap"]:
        reasons.append(f"close {fmt(f['close'])} below vwap {fmt(f['vwap'])}")
    if f["ema_20"] < f["ema_50"]:
        reasons.append(f"down-trend: ema_20 {fmt(f['ema_20'])} < ema_50 {fmt(f['ema_50'])}")
    if reasons:
        return not_fired(NAME, reasons)
    return fired(NAME, f, cfg, "pulled back from the high of day while holding vwap")
