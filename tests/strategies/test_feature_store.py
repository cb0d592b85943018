"""Engines are warmed up from stored bars: a restart or a skipped bar gives the same features."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from marketdata.services import bars_upsert
from marketdata.types import BarData
from strategies.feature_store import engines_reset
from strategies.features import compute_features
from strategies.models import FeatureSnapshot
from strategies.services import evaluate_bar
from tests.strategies.test_features_equivalence import synthetic_sessions

pytestmark = pytest.mark.django_db

COLUMNS = ("ema_20", "ema_50", "atr_14", "vwap", "vwap_sigma", "rvol", "or_high", "ema15m_50")


def stored_synthetic(symbol="SPY"):
    df = synthetic_sessions(seed=11).iloc[:3000]
    bars = [
        BarData(
            symbol, ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume, source="replay"
        )
        for ts, r in zip(df.index, df.itertuples(), strict=True)
    ]
    bars_upsert(bars=bars)
    return df, bars


def assert_snapshot_matches(vec: pd.DataFrame, bar_ts):
    row = vec.loc[pd.Timestamp(bar_ts)]
    if not row["in_session"]:  # extended hours: never evaluated, nothing stored
        assert not FeatureSnapshot.objects.filter(symbol="SPY", bar_ts=bar_ts).exists()
        return
    snap = FeatureSnapshot.objects.get(symbol="SPY", bar_ts=bar_ts).features
    for col in COLUMNS:
        expected = row[col]
        if math.isnan(expected):
            assert snap[col] is None, col
        else:
            assert snap[col] == pytest.approx(expected, rel=1e-9), col


def test_restart_mid_session_gives_the_same_features(settings):
    settings.ENABLED_SETUPS = []
    df, bars = stored_synthetic()
    vec = compute_features(df)
    for i, b in enumerate(bars):
        if i in (700, 1500, 1501, 2222):
            engines_reset()  # the worker restarts
        evaluate_bar(symbol="SPY", bar_ts=b.ts)
    for b in bars[::37]:
        assert_snapshot_matches(vec, b.ts)


def test_skipped_bars_are_read_back_from_storage(settings):
    """Another worker handled bars in between: this worker catches up from the database."""
    settings.ENABLED_SETUPS = []
    df, bars = stored_synthetic()
    vec = compute_features(df)
    for b in bars[::7]:
        evaluate_bar(symbol="SPY", bar_ts=b.ts)
        assert_snapshot_matches(vec, b.ts)
    # an older, never evaluated bar is answered from a temporary engine
    old = bars[1200]
    evaluate_bar(symbol="SPY", bar_ts=old.ts)
    assert_snapshot_matches(vec, old.ts)


def test_rewritten_storage_is_noticed_and_the_engine_rebuilt(settings):
    """A cached engine whose last bar is no longer stored as it saw it is not trusted."""
    from marketdata.models import Bar

    settings.ENABLED_SETUPS = []
    df, bars = stored_synthetic()
    for b in bars[:900]:
        evaluate_bar(symbol="SPY", bar_ts=b.ts)
    Bar.objects.filter(symbol="SPY", ts=bars[899].ts).update(close=bars[899].close + 1.0)
    evaluate_bar(symbol="SPY", bar_ts=bars[950].ts)
    changed = df.copy()
    changed.loc[changed.index[899], "close"] += 1.0
    assert_snapshot_matches(compute_features(changed.iloc[:951]), bars[950].ts)
