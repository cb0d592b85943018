"""The feature library (strategies.features.library) on the shared SPY sessions: each feature
equals TA-Lib (or, where TA-Lib has none, an independent pandas definition written here) to 1e-9
after warm-up, and the incremental calculators equal their vectorised twins bar for bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies.features import FeatureEngine, compute_features
from strategies.features.library import FeatureLibrary, feature_kind
from tests.conftest import shared_file

talib = pytest.importorskip("talib", reason="TA-Lib is a dev requirement (requirements/dev.txt)")

FILE = "data/SPY_1m_2011-01.csv"
NAMES = [
    "ema_9",
    "sma_30",
    "ema5m_9",
    "sma5m_6",
    "ema15m_12",
    "sma15m_4",
    "rsi_14",
    "atr_7",
    "adx_14",
    "plus_di_14",
    "minus_di_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper_20",
    "bb_mid_20",
    "bb_lower_20",
    "stoch_k_14",
    "stoch_d_14",
    "highest_20",
    "lowest_20",
    "prior_day_high",
    "prior_day_low",
    "prior_day_close",
    "premarket_high",
    "premarket_low",
    "opening_gap",
    "vwap_slope",
    "vwap_slope_10",
    "new_high",
    "new_low",
]
WARM = 600  # bars after which Wilder-smoothed values forget their seed (< 1e-12 of it)


@pytest.fixture(scope="module")
def data():
    df = pd.read_csv(shared_file(FILE))
    df.index = pd.to_datetime(df.pop("ts"), utc=True)
    engine = FeatureEngine("SPY", library=FeatureLibrary(NAMES))
    rows = []
    for ts, o, h, lo, c, v in zip(df.index.to_pydatetime(), df["open"], df["high"], df["low"],
                                  df["close"], df["volume"], strict=True):  # fmt: skip
        row = engine.update(ts, float(o), float(h), float(lo), float(c), float(v))
        if row is not None:
            rows.append(row)
    inc = pd.DataFrame(rows).set_index("ts")
    vec = compute_features(df, features=NAMES)
    vec = vec[vec["in_session"]]
    return df, inc, vec


def close_enough(a, b, tol=1e-9) -> np.ndarray:
    return np.isclose(np.asarray(a, float), np.asarray(b, float), rtol=tol, atol=tol)


def test_every_name_is_known():
    assert all(feature_kind(n) for n in NAMES)
    assert feature_kind("rsi_x") is None and feature_kind("ema_0") is None


def test_incremental_equals_vectorised_exactly(data):
    """Not merely close: the same floats, so `close >= bb_mid_20` decides the same on both
    paths even at equality."""
    _, inc, vec = data
    assert len(inc) == len(vec) and (inc.index == vec.index).all()
    for name in NAMES:
        a = inc[name].to_numpy(dtype=float)
        b = vec[name].to_numpy(dtype=float)
        assert (np.isnan(a) == np.isnan(b)).all(), f"{name}: NaN pattern differs"
        ok = np.isnan(a) | (a == b)
        assert ok.all(), f"{name}: {a[~ok][:3]} vs {b[~ok][:3]}"


def _cmp(ours: np.ndarray, ref: np.ndarray, start: int, name: str) -> None:
    ours, ref = np.asarray(ours[start:], float), np.asarray(ref[start:], float)
    both = ~np.isnan(ref)
    assert both.sum() > 1000, name
    assert (~np.isnan(ours[both])).all(), f"{name}: NaN where TA-Lib has a value"
    ok = close_enough(ours[both], ref[both])
    assert ok.all(), f"{name}: max diff {np.nanmax(np.abs(ours[both] - ref[both]))}"


def test_indicators_equal_talib(data):
    _, inc, _ = data
    h, lo, c = (inc[k].to_numpy(float) for k in ("high", "low", "close"))
    _cmp(inc["ema_9"], talib.EMA(c, 9), 0, "ema_9")
    _cmp(inc["sma_30"], talib.SMA(c, 30), 0, "sma_30")
    _cmp(inc["rsi_14"], talib.RSI(c, 14), 0, "rsi_14")
    _cmp(inc["atr_7"], talib.ATR(h, lo, c, 7), WARM, "atr_7")
    _cmp(inc["atr_14"], talib.ATR(h, lo, c, 14), WARM, "atr_14 (base)")
    _cmp(inc["adx_14"], talib.ADX(h, lo, c, 14), WARM, "adx_14")
    _cmp(inc["plus_di_14"], talib.PLUS_DI(h, lo, c, 14), WARM, "plus_di_14")
    _cmp(inc["minus_di_14"], talib.MINUS_DI(h, lo, c, 14), WARM, "minus_di_14")
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    _cmp(inc["macd"], macd, 0, "macd")
    _cmp(inc["macd_signal"], signal, 0, "macd_signal")
    _cmp(inc["macd_hist"], hist, 0, "macd_hist")
    upper, mid, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    _cmp(inc["bb_upper_20"], upper, 0, "bb_upper_20")
    _cmp(inc["bb_mid_20"], mid, 0, "bb_mid_20")
    _cmp(inc["bb_lower_20"], lower, 0, "bb_lower_20")
    k, d = talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    _cmp(inc["stoch_k_14"], k, 0, "stoch_k_14")
    _cmp(inc["stoch_d_14"], d, 0, "stoch_d_14")
    _cmp(inc["highest_20"], talib.MAX(h, 20), 0, "highest_20")
    _cmp(inc["lowest_20"], talib.MIN(lo, 20), 0, "lowest_20")


@pytest.mark.parametrize(("name", "size", "ma", "n"), [
    ("ema5m_9", 5, "EMA", 9), ("sma5m_6", 5, "SMA", 6),
    ("ema15m_12", 15, "EMA", 12), ("sma15m_4", 15, "SMA", 4),
])  # fmt: skip
def test_higher_timeframe_averages_equal_talib_on_resampled_bars(data, name, size, ma, n):
    """On the last 1-minute bar of each 5/15-minute bar (aligned to 09:30) the value is TA-Lib's
    average of those bars' closes."""
    _, inc, _ = data
    key = pd.Series(inc["session_date"].astype(str) + "/" + (inc["minute"] // size).astype(str))
    last = (key != key.shift(-1)).to_numpy()
    finals = inc["close"].to_numpy(float)[last]
    ref = getattr(talib, ma)(finals, n)
    ours = inc[name].to_numpy(float)[last]
    ok = ~np.isnan(ref)
    assert ok.sum() > 200
    assert close_enough(ours[ok], ref[ok]).all(), name


def test_session_levels_equal_an_independent_definition(data):
    """prior-day high/low/close, pre-market high/low, opening gap, vwap slope and the new
    high/low events, by pandas group-bys over the raw bars."""
    df, inc, _ = data
    local = df.index.tz_convert("America/New_York")
    day = pd.Series(local.date, index=df.index)
    minute_of_day = local.hour * 60 + local.minute
    regular = (minute_of_day >= 570) & (minute_of_day < 960)
    reg = df[regular].assign(day=day[regular])
    daily = reg.groupby("day").agg(h=("high", "max"), lo=("low", "min"), c=("close", "last"),
                                   o=("open", "first"))  # fmt: skip
    prior = daily.shift(1)
    pre = df[(minute_of_day >= 240) & (minute_of_day < 570)].assign(day=day)
    pre_levels = pre.groupby("day").agg(h=("high", "max"), lo=("low", "min"))
    sess = inc["session_date"]
    expect = {
        "prior_day_high": sess.map(prior["h"]),
        "prior_day_low": sess.map(prior["lo"]),
        "prior_day_close": sess.map(prior["c"]),
        "premarket_high": sess.map(pre_levels["h"]),
        "premarket_low": sess.map(pre_levels["lo"]),
        "opening_gap": sess.map(daily["o"] / prior["c"] - 1.0),
    }
    vwap = inc["vwap"]
    for n, name in ((5, "vwap_slope"), (10, "vwap_slope_10")):
        expect[name] = vwap / vwap.groupby(sess).shift(n) - 1.0
    for name, ref in expect.items():
        ours = inc[name].to_numpy(float)
        ref = ref.to_numpy(float)
        assert (np.isnan(ours) == np.isnan(ref)).all(), name
        assert (np.isnan(ref) | close_enough(ours, ref)).all(), name
        assert (~np.isnan(ref)).sum() > 5000, name
    prev_hod = inc["high"].groupby(sess).cummax().groupby(sess).shift(1)
    prev_lod = inc["low"].groupby(sess).cummin().groupby(sess).shift(1)
    assert (inc["new_high"] == (inc["high"] > prev_hod)).all()
    assert (inc["new_low"] == (inc["low"] < prev_lod)).all()
    assert inc["new_high"].sum() > 100


def test_features_are_computed_only_when_named():
    engine = FeatureEngine("X", library=FeatureLibrary(["rsi_14"]))
    assert [type(c).__name__ for c in engine.library.calcs] == ["_Rsi"]
    plain = FeatureEngine("X")
    assert plain.library is None
