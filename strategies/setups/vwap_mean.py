"""VWAP_MEAN: a deep discount to vwap (vwap - close >= VWAP_MEAN_MIN_ATR*ATR) in a constructive
regime (>= VWAP_MEAN_MIN_REGIME) with rvol >= VWAP_MEAN_MIN_RVOL; T1 = vwap,
T2 = vwap + VWAP_MEAN_T2_ATR*ATR."""

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

NAME = "VWAP_MEAN"


def evaluate(f: dict, ctx: SetupContext, cfg: StrategyConfig) -> Decision:
    lacking = missing(f, "regime_score", "vwap", "atr_14", "rvol")
    if lacking:
        return warming_up(NAME, lacking)
    reasons = []
    if not f["regime_score"] >= cfg.vwap_mean_min_regime:
        reasons.append(f"regime {fmt(f['regime_score'])} below {cfg.vwap_mean_min_regime}")
    discount = f["vwap"] - f["close"]
    need = cfg.vwap_mean_min_atr * f["atr_14"]
    if not discount >= need:
        reasons.append(
            f"discount to vwap {fmt(discount)} smaller than {cfg.vwap_mean_min_atr} ATR"
            f" ({fmt(need)})"
        )
    if not f["rvol"] >= cfg.vwap_mean_min_rvol:
        reasons.append(f"rvol {fmt(f['rvol'])} below {cfg.vwap_mean_min_rvol}")
    if reasons:
        return not_fired(NAME, reasons)
    return fired(
        NAME,
        f,
        cfg,
        "deep discount to vwap in a constructive regime",
        target_one=f["vwap"],
        target_two=f["vwap"] + cfg.vwap_mean_t2_atr * f["atr_14"],
    )
