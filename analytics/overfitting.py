"""Overfitting odds of a parameter search: the probability of backtest overfitting (PBO) by
combinatorially symmetric cross-validation, and the deflated Sharpe ratio of the winner.

Both answer "how much of the best result is luck of the search?":
- PBO (Bailey, Borwein, López de Prado, Zhu, "The Probability of Backtest Overfitting",
  Journal of Computational Finance 20(4), 2017; working paper 2014): split the T x N matrix of
  per-period results (T sessions, N candidates) into S equal blocks of rows; for every way of
  taking S/2 blocks as "in sample" and the rest as "out of sample", find the in-sample best and
  its relative rank out of sample, w = rank / (N + 1); PBO is the share of splits where the
  in-sample best lands in the bottom half out of sample (logit(w) <= 0).
- Deflated Sharpe ratio (Bailey & López de Prado, "The Deflated Sharpe Ratio: Correcting for
  Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management
  40(5), 2014): the probabilistic Sharpe ratio of the winner measured against the Sharpe ratio
  the best of N skill-less trials would show by chance,
  SR0 = sqrt(V[SR_n]) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e))), g = Euler's constant,
  DSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2)).
Sharpe ratios here are per period (per session), not annualised, as both papers use them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329
MAX_SPLITS = 5000  # C(16, 8) = 12,870: past this, blocks are capped (see pbo_cscv)


@dataclass(frozen=True)
class PBOResult:
    pbo: float | None  # share of splits whose in-sample best is below the median out of sample
    splits: int
    blocks: int
    candidates: int
    periods: int
    logits: list[float]
    degradation_slope: float | None  # OOS vs IS performance of the chosen one, least squares
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _sharpe_columns(block: np.ndarray) -> np.ndarray:
    """Per-column mean/std (ddof=1); a flat column scores 0 (no edge, no risk)."""
    mean = block.mean(axis=0)
    std = block.std(axis=0, ddof=1) if block.shape[0] > 1 else np.zeros(block.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(std > 0, mean / std, 0.0)
    return out


def _score(block: np.ndarray, metric: str) -> np.ndarray:
    if metric == "sharpe":
        return _sharpe_columns(block)
    if metric == "mean":
        return block.mean(axis=0)
    raise ValueError(f"metric must be 'sharpe' or 'mean', not {metric!r}")


def pbo_cscv(matrix: Sequence[Sequence[float]], *, blocks: int = 16, metric: str = "sharpe"):
    """PBO of choosing the best column of `matrix` (rows: periods in time order, columns:
    candidates). `blocks` (S, even) is lowered to fit the rows (at least 1 row per block) and
    capped so the splits stay <= MAX_SPLITS; rows past the last whole block are dropped (the
    oldest ones are kept, as the paper's equal-size blocks require). In-sample ties go to the
    first candidate; out-of-sample ranks of ties are averaged."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError("matrix must be periods x candidates")
    t, n = m.shape
    s = min(blocks, t)
    s -= s % 2
    while s > 2 and math.comb(s, s // 2) > MAX_SPLITS:
        s -= 2
    if n < 2 or t < 4:
        why = "needs >= 2 candidates" if n < 2 else "needs >= 4 periods"
        return PBOResult(None, 0, s, n, t, [], None, reason=why)
    size = t // s
    parts = [m[i * size : (i + 1) * size] for i in range(s)]
    logits, is_best, oos_best = [], [], []
    for chosen in itertools.combinations(range(s), s // 2):
        rest = [i for i in range(s) if i not in chosen]
        train = np.vstack([parts[i] for i in chosen])
        test = np.vstack([parts[i] for i in rest])
        r_is, r_oos = _score(train, metric), _score(test, metric)
        best = int(np.argmax(r_is))
        rank = stats.rankdata(r_oos, method="average")[best]  # 1 = worst
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
        is_best.append(float(r_is[best]))
        oos_best.append(float(r_oos[best]))
    slope = None
    if len(set(is_best)) > 1:
        slope = float(np.polyfit(is_best, oos_best, 1)[0])
    pbo = sum(1 for x in logits if x <= 0) / len(logits)
    return PBOResult(pbo, len(logits), s, n, t, [round(x, 6) for x in logits], slope)


@dataclass(frozen=True)
class DeflatedSharpe:
    sharpe: float | None  # per period, of the selected candidate
    sharpe_zero: float | None  # SR0: expected best per-period Sharpe of N skill-less trials
    dsr: float | None  # probability that the true Sharpe exceeds SR0
    trials: int
    periods: int
    skew: float | None
    kurtosis: float | None  # not excess: 3 for a normal distribution
    sharpe_variance: float | None
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def expected_max_sharpe(*, trials: int, variance: float) -> float:
    """SR0 of the deflated Sharpe paper: the expected maximum of `trials` Sharpe estimates whose
    true value is zero and whose cross-trial variance is `variance` (0 for a single trial)."""
    if trials < 2 or variance <= 0:
        return 0.0
    z = stats.norm.ppf
    return math.sqrt(variance) * (
        (1 - EULER_GAMMA) * z(1 - 1 / trials) + EULER_GAMMA * z(1 - 1 / (trials * math.e))
    )


def probabilistic_sharpe(
    *, sharpe: float, benchmark: float, periods: int, skew: float, kurtosis: float
) -> float | None:
    """PSR: probability that the true per-period Sharpe exceeds `benchmark`, given the
    estimate's length, skewness and (non-excess) kurtosis; None when the variance term is not
    positive (a return series too skewed for the normal approximation)."""
    if periods < 2:
        return None
    var = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if var <= 0:
        return None
    return float(stats.norm.cdf((sharpe - benchmark) * math.sqrt(periods - 1) / math.sqrt(var)))


def deflated_sharpe(
    returns: Sequence[float], *, trials: int, trial_sharpes: Sequence[float] | None = None,
    sharpe_variance: float | None = None,
) -> DeflatedSharpe:  # fmt: skip
    """DSR of the selected candidate's per-period `returns` after `trials` tries; the variance of
    the trials' Sharpe ratios comes from `trial_sharpes` or is given directly."""
    r = np.asarray(returns, dtype=float)
    t = len(r)
    if sharpe_variance is None:
        sharpes = np.asarray(trial_sharpes if trial_sharpes is not None else [], dtype=float)
        sharpe_variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    std = float(np.std(r, ddof=1)) if t > 1 else 0.0
    if t < 3 or std == 0:
        why = "needs >= 3 periods" if t < 3 else "returns do not vary"
        return DeflatedSharpe(None, None, None, trials, t, None, None, sharpe_variance, why)
    sr = float(np.mean(r)) / std
    skew = float(stats.skew(r, bias=True))
    kurt = float(stats.kurtosis(r, fisher=False, bias=True))
    sr0 = expected_max_sharpe(trials=trials, variance=sharpe_variance)
    dsr = probabilistic_sharpe(sharpe=sr, benchmark=sr0, periods=t, skew=skew, kurtosis=kurt)
    return DeflatedSharpe(sr, sr0, dsr, trials, t, skew, kurt, sharpe_variance)


def per_period_sharpe(returns: Sequence[float]) -> float:
    r = np.asarray(returns, dtype=float)
    if len(r) < 2:
        return 0.0
    std = float(np.std(r, ddof=1))
    return float(np.mean(r)) / std if std > 0 else 0.0


def search_overfitting(daily: dict[str, dict[str, float]], *, blocks: int = 16) -> dict:
    """PBO and deflated Sharpe of a search, from each candidate's P&L per session
    ({candidate: {session: pnl}}; sessions a candidate has no entry for count as 0). The
    selected candidate is the one with the best per-session Sharpe over all sessions."""
    names = list(daily)
    sessions = sorted({d for per in daily.values() for d in per})
    if not names or not sessions:
        return {"pbo": None, "deflated_sharpe": None, "reason": "no results"}
    matrix = np.array([[daily[c].get(d, 0.0) for c in names] for d in sessions], dtype=float)
    sharpes = [per_period_sharpe(matrix[:, j]) for j in range(len(names))]
    best = int(np.argmax(sharpes))
    pbo = pbo_cscv(matrix, blocks=blocks)
    dsr = deflated_sharpe(matrix[:, best], trials=len(names), trial_sharpes=sharpes)
    return {
        "pbo": pbo.as_dict(),
        "deflated_sharpe": dsr.as_dict(),
        "selected": names[best],
        "sessions": len(sessions),
        "candidates": len(names),
    }
