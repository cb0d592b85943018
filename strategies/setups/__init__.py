"""The seven setups of DESIGN §4, one module each; `SETUPS` maps name -> evaluate function."""

from __future__ import annotations

from collections.abc import Callable

from strategies.setups import (
    ema_cross,
    hod_fail,
    orb,
    sigma_fade,
    trend_pullback,
    vwap_mean,
    vwap_reclaim,
)
from strategies.setups.base import FIRED, NOT_FIRED, WARMING_UP, Decision, SetupContext

SETUPS: dict[str, Callable] = {
    m.NAME: m.evaluate
    for m in (ema_cross, vwap_reclaim, sigma_fade, hod_fail, orb, trend_pullback, vwap_mean)
}

__all__ = ["SETUPS", "Decision", "SetupContext", "FIRED", "NOT_FIRED", "WARMING_UP"]
