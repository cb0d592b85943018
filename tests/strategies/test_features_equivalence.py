"""The incremental engine and the vectorised twin agree bar for bar (relative 1e-9)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from strategies.features import FEATURE_COLUMNS, FeatureEngine, compute_features
from tests.conftest import shared_file
from tests.strategies.conftest import et

COMPARED = (*FEATURE_COLUMNS, "ema_20_prev", "ema_50_prev")


def read_csv(path) -> pd.DataFrame:
    df = pd.read_csv(path)
    df.index = pd.to_datetime(df.pop("ts"), utc=True)
    return df


def run_engine(df: pd.DataFrame, **params) -> list[dict | None]:
    engine = FeatureEngine("X", **params)
    rows = []
    for ts, o, h, lo, c, v in zip(
        df.index.to_pydatetime(),
        df["open"],
        df["high"],
        df["low"],
        df["close"],
        df["volume"],
        strict=True,
    ):
        rows.append(engine.update(ts, float(o), float(h), float(lo), float(c), float(v)))
    return rows


def assert_equal_bar_for_bar(df: pd.DataFrame, **params) -> pd.DataFrame:
    vec = compute_features(df, **params)
    rows = run_engine(df, **params)
    assert len(vec) == len(rows)
    in_session = vec["in_session"].to_numpy()
    assert [r is not None for r in rows] == list(in_session)
    regular = [r for r in rows if r is not None]
    sub = vec[in_session]
    for col in COMPARED:
        inc = np.array([r[col] for r in regular], dtype=float)
        v = sub[col].to_numpy(dtype=float)
        same_nan = np.isnan(inc) == np.isnan(v)
        assert same_nan.all(), f"{col}: NaN pattern differs at {sub.index[~same_nan][:3]}"
        ok = np.isclose(inc, v, rtol=1e-9, atol=1e-12, equal_nan=True)
        assert ok.all(), f"{col}: differs at {sub.index[~ok][:3]}: {inc[~ok][:3]} vs {v[~ok][:3]}"
    assert [r["rvol_method"] for r in regular] == list(sub["rvol_method"])
    return vec


@pytest.mark.parametrize("name", ["data/SPY_1m_2011-01.csv", "data/SPY_1m_2011-03.csv"])
def test_engine_equals_vectorised_on_real_spy_sessions(name):
    df = read_csv(shared_file(name))
    vec = assert_equal_bar_for_bar(df, lookback_days=10, lookback_min=180)
    # every regular session of these files has 390 bars; extended hours are ignored
    sessions = vec[vec["in_session"]].groupby(vec[vec["in_session"]].index.date).size()
    assert (sessions == 390).all()
    assert (vec["rvol_method"] == "profile").any()
    assert vec.loc[vec["in_session"], "atr_14"].notna().sum() > 1000


def test_engine_equals_vectorised_on_real_es_sessions_with_missing_bars():
    df = read_csv(shared_file("data/ES_1m_2020-01_04.csv"))
    assert_equal_bar_for_bar(df, lookback_days=20, lookback_min=60)


def synthetic_sessions(seed: int = 3) -> pd.DataFrame:
    """Sessions over the 2024 DST switch (Mar 10) and two early closes (Jul 3, Nov 29), with
    pre/post-market bars, missing minutes, a missing opening range, zero-volume bars and bars
    after an early close."""
    rng = np.random.default_rng(seed)
    days = [
        date(2024, 3, 6),
        date(2024, 3, 7),
        date(2024, 3, 8),
        date(2024, 3, 11),  # first session after the switch to EDT
        date(2024, 3, 12),
        date(2024, 7, 3),  # early close 13:00
        date(2024, 7, 5),
        date(2024, 11, 29),  # early close 13:00
        date(2024, 12, 2),
    ]
    rows = []
    price = 500.0
    for n_day, day in enumerate(days):
        start = et(day, "08:00")
        for i in range(60 * 10):  # 08:00 .. 17:59 ET: pre, regular, post
            ts = start + timedelta(minutes=i)
            if rng.random() < 0.05:
                continue  # a gap
            if n_day == 3 and et(day, "09:30") <= ts < et(day, "10:05"):
                continue  # opening range missing entirely (e.g. a halted open)
            step = rng.normal(0, 0.15)
            o = price
            price = max(1.0, price + step)
            hi = max(o, price) + abs(rng.normal(0, 0.05))
            lo = min(o, price) - abs(rng.normal(0, 0.05))
            vol = float(rng.integers(0, 3) * 0 if rng.random() < 0.08 else rng.integers(50, 5000))
            if i == 90:  # the 09:30 bar of several sessions trades nothing
                vol = 0.0
            rows.append((ts, o, hi, lo, price, vol))
    df = pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])
    df.index = pd.DatetimeIndex(df.pop("ts"))
    return df


def test_engine_equals_vectorised_on_synthetic_gaps_half_days_and_dst():
    df = synthetic_sessions()
    vec = assert_equal_bar_for_bar(
        df, lookback_days=3, lookback_min=30, rvol_profile_min_sessions=2
    )
    sess = vec[vec["in_session"]]
    # the opening range is the first 30 minutes ET on both sides of the DST switch
    before = sess.loc[sess.index.date == date(2024, 3, 8)]
    after = sess.loc[sess.index.date == date(2024, 3, 12)]
    assert before.index.min().strftime("%H:%M") >= "14:30"
    assert after.index.min().strftime("%H:%M") >= "13:30"
    assert before["or_high"].iloc[:29].isna().all()
    assert before["or_high"].iloc[40:].notna().all()
    # the missing opening range leaves or_high NaN for that whole session
    assert sess.loc[sess.index.date == date(2024, 3, 11), "or_high"].isna().all()
    # early close: nothing at or after 13:00 ET counts as regular session
    half = vec.loc[vec.index.tz_convert("America/New_York").date == date(2024, 11, 29)]
    late = half.index.tz_convert("America/New_York").strftime("%H:%M") >= "13:00"
    assert not half.loc[late, "in_session"].any()
    assert half.loc[~late & half["in_session"]].shape[0] > 150
    # rvol falls back to the trailing window first, then uses the profile
    methods = list(dict.fromkeys(sess["rvol_method"]))
    assert methods[:3] == ["", "trailing", "profile"]


def test_vwap_is_nan_until_volume_trades():
    day = date(2024, 3, 6)
    idx = pd.DatetimeIndex([et(day, "09:30"), et(day, "09:31"), et(day, "09:32")])
    df = pd.DataFrame(
        {
            "open": [10.0, 10.0, 11.0],
            "high": [10.5, 11.5, 12.0],
            "low": [9.5, 9.5, 10.0],
            "close": [10.0, 11.0, 11.0],
            "volume": [0.0, 100.0, 300.0],
        },
        index=idx,
    )
    vec = assert_equal_bar_for_bar(df)
    assert np.isnan(vec["vwap"].iloc[0])
    assert vec["vwap"].iloc[1] == pytest.approx((11.5 + 9.5 + 11.0) / 3)
    tp = np.array([(11.5 + 9.5 + 11.0) / 3, (12.0 + 10.0 + 11.0) / 3])
    w = np.array([100.0, 300.0])
    mean = (tp * w).sum() / w.sum()
    assert vec["vwap"].iloc[2] == pytest.approx(mean)
    assert vec["vwap_sigma"].iloc[2] == pytest.approx(np.sqrt((w * (tp - mean) ** 2).sum() / 400))


def test_ema_is_seeded_with_the_simple_mean_and_atr_is_wilder():
    day = date(2024, 3, 6)
    closes = np.arange(1.0, 61.0)
    idx = pd.DatetimeIndex([et(day, "09:30") + timedelta(minutes=i) for i in range(60)])
    df = pd.DataFrame(
        {"open": closes, "high": closes + 1, "low": closes - 1, "close": closes, "volume": 1.0},
        index=idx,
    )
    vec = assert_equal_bar_for_bar(df)
    assert vec["ema_20"].iloc[:19].isna().all()
    assert vec["ema_20"].iloc[19] == pytest.approx(closes[:20].mean())
    k = 2 / 21
    assert vec["ema_20"].iloc[20] == pytest.approx(closes[:20].mean() + k * (21 - 10.5))
    # TR: first bar h-l = 2, then max(2, |h-pc|=2, |l-pc|=0) = 2 -> ATR = 2 once seeded
    assert vec["atr_14"].iloc[12] != vec["atr_14"].iloc[12]
    assert vec["atr_14"].iloc[13] == pytest.approx(2.0)
    assert vec["ema_20_slope"].iloc[24] == pytest.approx(
        vec["ema_20"].iloc[24] / vec["ema_20"].iloc[19] - 1
    )


def test_compute_features_rejects_naive_or_unsorted_input():
    df = pd.DataFrame(
        {"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1.0]},
        index=pd.DatetimeIndex(["2024-03-06 14:30"]),
    )
    with pytest.raises(ValueError, match="tz-aware"):
        compute_features(df)
    with pytest.raises(ValueError, match="columns"):
        compute_features(df.drop(columns=["volume"]).tz_localize("UTC"))
