"""Typed strategy settings, read once; business code takes a `StrategyConfig` argument so tests
build one directly instead of patching the environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

from django.conf import settings

from strategies.setups.names import BUILTIN_SETUPS


def _enabled_setups() -> tuple[str, ...]:
    """ENABLED_SETUPS of the built-ins plus every enabled setup of SETUPS_DIR, the admin and
    the plug-ins (`strategies.setups.registry`)."""
    from strategies.setups.registry import enabled_names

    return enabled_names()


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    enabled_setups: tuple[str, ...] = BUILTIN_SETUPS
    lookback_days: int = 120
    lookback_min: int = 180
    rvol_profile_min_sessions: int = 5
    cooldown_sec: int = 900
    stop_atr: float = 1.2
    target_one_atr: float = 1.0
    target_two_atr: float = 2.0
    vwap_min_rvol: float = 1.1
    power_hour_symbols: frozenset[str] = frozenset({"SPX", "NDX"})
    power_hour_start: time = time(15, 0)
    sigma_fade_band_k: float = 1.0
    sigma_fade_min_rvol: float = 0.9
    hod_fail_min_atr: float = 0.5
    orb_start: time = time(10, 0)
    orb_end: time = time(14, 0)
    orb_breakout_atr: float = 0.2
    orb_min_rvol: float = 1.1
    orb_stop_atr: float = 1.2
    orb_min_regime: float = 0.0
    trend_pullback_max_atr: float = 1.5
    trend_pullback_min_rvol: float = 1.0
    trend_pullback_min_regime: float = 0.0
    vwap_mean_min_atr: float = 0.5
    vwap_mean_min_rvol: float = 1.0
    vwap_mean_min_regime: float = 0.0
    vwap_mean_t2_atr: float = 2.0
    execution_map: dict[str, str] = field(default_factory=lambda: {"SPX": "SPY", "NDX": "QQQ"})
    etf_symbols: frozenset[str] = frozenset({"SPY", "QQQ", "IWM", "DIA"})
    options_enabled: bool = True
    options_min_volume: int = 500
    options_max_iv: float = 3.0
    options_cache_ttl_sec: int = 300

    @classmethod
    def from_settings(cls) -> StrategyConfig:
        s = settings
        return cls(
            enabled_setups=_enabled_setups(),
            lookback_days=s.LOOKBACK_DAYS,
            lookback_min=s.LOOKBACK_MIN,
            rvol_profile_min_sessions=getattr(s, "RVOL_PROFILE_MIN_SESSIONS", 5),
            cooldown_sec=s.VWAP_COOLDOWN_SEC,
            stop_atr=s.RISK_STOP_ATR_MULTIPLIER,
            target_one_atr=s.TARGET_ONE_ATR_MULTIPLIER,
            target_two_atr=s.TARGET_TWO_ATR_MULTIPLIER,
            vwap_min_rvol=s.VWAP_MIN_RVOL,
            power_hour_symbols=frozenset(s.POWER_HOUR_SYMBOLS),
            power_hour_start=s.POWER_HOUR_START,
            sigma_fade_band_k=s.SIGMA_FADE_BAND_K,
            sigma_fade_min_rvol=s.SIGMA_FADE_MIN_RVOL,
            hod_fail_min_atr=s.HOD_FAIL_MIN_ATR,
            orb_start=s.ORB_START,
            orb_end=s.ORB_END,
            orb_breakout_atr=s.ORB_BREAKOUT_ATR,
            orb_min_rvol=s.ORB_MIN_RVOL,
            orb_stop_atr=s.ORB_STOP_ATR,
            orb_min_regime=s.ORB_MIN_REGIME,
            trend_pullback_max_atr=s.TREND_PULLBACK_MAX_ATR,
            trend_pullback_min_rvol=s.TREND_PULLBACK_MIN_RVOL,
            trend_pullback_min_regime=s.TREND_PULLBACK_MIN_REGIME,
            vwap_mean_min_atr=s.VWAP_MEAN_MIN_ATR,
            vwap_mean_min_rvol=s.VWAP_MEAN_MIN_RVOL,
            vwap_mean_min_regime=s.VWAP_MEAN_MIN_REGIME,
            vwap_mean_t2_atr=s.VWAP_MEAN_T2_ATR,
            execution_map=dict(s.SYMBOL_EXECUTION_MAP),
            etf_symbols=frozenset(getattr(s, "ETF_SYMBOLS", ("SPY", "QQQ", "IWM", "DIA"))),
            options_enabled=s.ENABLE_OPTIONS_FEEDBACK,
            options_min_volume=s.OPTIONS_MIN_VOLUME,
            options_max_iv=s.OPTIONS_MAX_IV,
            options_cache_ttl_sec=s.OPTIONS_CACHE_TTL_SEC,
        )

    def execution_symbol(self, symbol: str) -> str:
        return self.execution_map.get(symbol, symbol)
