"""Features of DESIGN §3: the incremental engine (live path) and its vectorised twin
(analysis/backtests), pinned equal by tests."""

from strategies.features.columns import FEATURE_COLUMNS
from strategies.features.engine import FeatureEngine


def compute_features(bars, **kwargs):
    """Vectorised features of a bar DataFrame; see `strategies.features.vectorised`."""
    from strategies.features.vectorised import compute_features as _compute

    return _compute(bars, **kwargs)


__all__ = ["FeatureEngine", "FEATURE_COLUMNS", "compute_features"]
