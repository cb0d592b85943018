"""EMA_CROSS: ema_20 crosses above ema_50 on this bar and the close is above ema_50."""

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

NAME = "EMA_CROSS"


def evaluate(f: dict, ctx: SetupContext, cfg: StrategyConfig) -> Decision:
    lacking = missing(f, "ema_20", "ema_50", "ema_20_prev", "ema_50_prev", "atr_14")
    if lacking:
        return warming_up(NAME, lacking)
    reasons = []
    if not (f["ema_20_prev"] <= f["ema_50_prev"] and f["ema_20"] > f["ema_50"]):
        reasons.append(
            f"no cross up: ema_20 {fmt(f['ema_20_prev'])}->{fmt(f['ema_20'])}"
            f" vs ema_50 {fmt(f['ema_50_prev'])}->{fmt(f['ema_50'])}"
        )
    if not f["close"] > f["ema_50"]:
        reasons.append(f"close {fmt(f['close'])} not above ema_50 {fmt(f['ema_50'])}")
    if reasons:
        return not_fired(NAME, reasons)
    return fired(NAME, f, cfg, "ema_20 crossed above ema_50 with close above ema_50")
