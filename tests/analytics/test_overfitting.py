"""PBO by CSCV and the deflated Sharpe ratio against hand-worked cases, the papers' own
example and scipy's normal distribution (never against this module's own output)."""

import math

import numpy as np
import pytest
from scipy import stats

from analytics.overfitting import (
    deflated_sharpe,
    expected_max_sharpe,
    pbo_cscv,
    probabilistic_sharpe,
    search_overfitting,
)

# Candidates A, B, C over four periods (rows). With S = 4 blocks of one row there are
# C(4, 2) = 6 splits; scoring by the mean, worked by hand (IS sums / OOS sums):
#   IS {1,2}: A2 B2 C2 -> A (tie: first)   OOS {3,4}: A4 B1 C3 -> A rank 3 -> w 3/4 -> +ln 3
#   IS {1,3}: A3 B1 C4 -> C                OOS {2,4}: A3 B2 C1 -> C rank 1 -> w 1/4 -> -ln 3
#   IS {1,4}: A5 B0 C1 -> A                OOS {2,3}: A1 B3 C4 -> A rank 1 -> -ln 3
#   IS {2,3}: A1 B3 C4 -> C                OOS {1,4}: A5 B0 C1 -> C rank 2 -> w 1/2 -> 0
#   IS {2,4}: A3 B2 C1 -> A                OOS {1,3}: A3 B1 C4 -> A rank 2 -> 0
#   IS {3,4}: A4 B1 C3 -> A                OOS {1,2}: all 2 -> average rank 2 -> 0
# logit <= 0 in 5 of 6 splits: PBO = 5/6.
HAND = [[2, 0, 1], [0, 2, 1], [1, 1, 3], [3, 0, 0]]


def test_pbo_of_the_hand_worked_matrix_is_five_sixths():
    result = pbo_cscv(HAND, blocks=4, metric="mean")
    assert result.splits == 6 and result.blocks == 4
    assert result.pbo == pytest.approx(5 / 6)
    expected = sorted([math.log(3), -math.log(3), -math.log(3), 0.0, 0.0, 0.0])
    assert sorted(result.logits) == pytest.approx(expected, abs=1e-6)


def test_a_candidate_best_in_every_period_has_no_overfitting():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, size=(40, 5))
    noise[:, 2] = noise.max(axis=1) + 1.0  # always the best, in sample and out
    result = pbo_cscv(noise, blocks=8, metric="mean")
    assert result.splits == math.comb(8, 4)
    assert result.pbo == 0.0
    # its out-of-sample rank is always N of N: w = 5/6 in every split
    assert set(result.logits) == {round(math.log(5), 6)}


def test_pbo_needs_two_candidates_and_four_periods():
    assert pbo_cscv([[1.0], [2.0], [3.0], [4.0]]).pbo is None
    assert pbo_cscv([[1.0, 2.0], [2.0, 1.0]]).pbo is None


def test_blocks_are_lowered_to_fit_the_periods():
    result = pbo_cscv(np.arange(20, dtype=float).reshape(10, 2), blocks=16, metric="mean")
    assert result.blocks == 10  # 10 rows: at most 10 blocks of one row
    assert result.splits == math.comb(10, 5)
    capped = pbo_cscv(np.arange(80, dtype=float).reshape(40, 2), blocks=40, metric="mean")
    assert capped.blocks == 14  # C(16, 8) = 12,870 splits would pass MAX_SPLITS
    assert capped.splits == math.comb(14, 7)


def test_expected_max_sharpe_matches_the_deflated_sharpe_papers_example():
    # Bailey & Lopez de Prado (2014), numerical example: 100 trials, variance of the annualised
    # Sharpe ratios across trials 0.5, daily data (250 a year) -> SR0 about 0.1132 per day.
    sr0 = expected_max_sharpe(trials=100, variance=0.5 / 250)
    by_hand = math.sqrt(0.5 / 250) * (
        (1 - 0.5772156649) * stats.norm.ppf(0.99)
        + 0.5772156649 * stats.norm.ppf(1 - 1 / (100 * math.e))
    )
    assert sr0 == pytest.approx(by_hand, rel=1e-9)
    assert sr0 == pytest.approx(0.1132, abs=5e-4)
    # ... and the same example's DSR: annualised SR 2.5 over 5 years, skew -3, kurtosis 10
    dsr = probabilistic_sharpe(
        sharpe=2.5 / math.sqrt(250), benchmark=sr0, periods=1250, skew=-3, kurtosis=10
    )
    assert dsr == pytest.approx(0.90, abs=0.005)


def test_expected_max_sharpe_approximates_the_simulated_maximum_of_normals():
    rng = np.random.default_rng(7)
    simulated = rng.normal(0, 1, size=(20000, 50)).max(axis=1).mean()
    assert expected_max_sharpe(trials=50, variance=1.0) == pytest.approx(simulated, abs=0.05)
    assert expected_max_sharpe(trials=1, variance=1.0) == 0.0


def test_probabilistic_sharpe_of_normal_returns_by_hand():
    # skew 0, kurtosis 3: z = SR * sqrt(T - 1) / sqrt(1 + SR^2 / 2)
    z = 0.1 * 10 / math.sqrt(1 + 0.01 / 2)
    got = probabilistic_sharpe(sharpe=0.1, benchmark=0.0, periods=101, skew=0, kurtosis=3)
    assert got == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    assert got == pytest.approx(0.8407, abs=1e-4)


def test_deflated_sharpe_of_a_small_series_worked_by_hand():
    returns = [1.0, -1.0, 2.0, 0.0]  # mean 0.5, sample std sqrt(5/3)
    sr = 0.5 / math.sqrt(5 / 3)
    # population moments: deviations .5 -1.5 1.5 -.5 -> m2 1.25, m3 0, m4 2.5625 -> kurt 1.64
    got = deflated_sharpe(returns, trials=1)
    assert got.sharpe == pytest.approx(sr)
    assert got.skew == pytest.approx(0.0, abs=1e-12)
    assert got.kurtosis == pytest.approx(2.5625 / 1.25**2)
    assert got.sharpe_zero == 0.0  # one trial: no selection to deflate
    var = 1 + (2.5625 / 1.5625 - 1) / 4 * sr**2
    assert got.dsr == pytest.approx(stats.norm.cdf(sr * math.sqrt(3) / math.sqrt(var)))


def test_more_trials_deflate_the_same_sharpe():
    rng = np.random.default_rng(3)
    returns = rng.normal(0.2, 1.0, 60)
    one = deflated_sharpe(returns, trials=1).dsr
    many = deflated_sharpe(returns, trials=100, sharpe_variance=0.02).dsr
    assert many < one


def test_search_overfitting_selects_by_sharpe_and_fills_missing_sessions_with_zero():
    daily = {
        "a": {"d1": 1.0, "d2": -1.0, "d3": 1.0, "d4": -1.0},
        "b": {"d1": 2.0, "d2": 1.0, "d3": 2.0, "d4": 1.5},
        "c": {"d1": 0.5},
    }
    out = search_overfitting(daily, blocks=4)
    assert out["selected"] == "b"
    assert out["sessions"] == 4 and out["candidates"] == 3
    assert out["deflated_sharpe"]["trials"] == 3
    assert out["pbo"]["splits"] == 6
