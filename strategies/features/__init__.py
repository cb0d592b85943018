"""Features of DESIGN §3: the incremental engine (live path) and its vectorised twin
(analysis/backtests), pinned equal by tests."""

from strategies.features.engine import FeatureEngine

FEATURE_COLUMNS = (
    "ema_20",
    "ema_50",
    "ema_20_slope",
    "vwap",
    "vwap_sigma",
    "vwap_upper_1",
    "vwap_lower_1",
    "vwap_upper_2",
    "vwap_lower_2",
    "atr_14",
    "rvol",
    "hod",
    "lod",
    "or_high",
    "or_low",
    "prev_close",
    "prev_day_close",
    "ema5m_20",
    "ema5m_50",
    "ema15m_20",
    "ema15m_50",
    "regime_score",
)


def compute_features(bars, **kwargs):
    """Vectorised features of a bar DataFrame; see `strategies.features.vectorised`."""
    from strategies.features.vectorised import compute_features as _compute

    return _compute(bars, **kwargs)


__all__ = ["FeatureEngine", "FEATURE_COLUMNS", "compute_features"]
