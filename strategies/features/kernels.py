"""Sequential kernels of the vectorised features, compiled with numba.

They run the incremental calculators' arithmetic in the same order (running sums add the new
value, then subtract the one leaving the window; EMAs step v + k*(x - v)), so the vectorised twin
gives the same floating-point numbers as the per-bar path, not merely close ones: a setup that
compares two features (close >= bb_mid_20) then decides the same way on both paths even when the
two are equal to the last few bits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def ema_seeded(x, n, k):  # pragma: no cover - compiled
    """EMA with factor k seeded with the mean of the first n values (NaN before)."""
    out = np.full(len(x), np.nan)
    seed = 0.0
    value = np.nan
    for i in range(len(x)):
        count = i + 1
        if count < n:
            seed += x[i]
        elif count == n:
            seed += x[i]
            value = seed / n
        else:
            value = value + k * (x[i] - value)
        out[i] = value
    return out


@njit(cache=True)
def ema_from(x, start, seed_value, k):  # pragma: no cover - compiled
    """EMA from index `start` (value seed_value there), stepping v + k*(x - v) after."""
    out = np.full(len(x), np.nan)
    value = seed_value
    out[start] = value
    for i in range(start + 1, len(x)):
        value = value + k * (x[i] - value)
        out[i] = value
    return out


@njit(cache=True)
def window_sum(x, n):  # pragma: no cover - compiled
    """Sum of the last n values once n are there (running sum; NaN before)."""
    out = np.full(len(x), np.nan)
    s = 0.0
    for i in range(len(x)):
        s += x[i]
        if i >= n:
            s -= x[i - n]
        if i >= n - 1:
            out[i] = s
    return out


@njit(cache=True)
def window_mean_sd(x, n):  # pragma: no cover - compiled
    """Mean and population standard deviation of the last n values (running sums)."""
    mean = np.full(len(x), np.nan)
    sd = np.full(len(x), np.nan)
    s = 0.0
    s2 = 0.0
    for i in range(len(x)):
        s += x[i]
        s2 += x[i] * x[i]
        if i >= n:
            old = x[i - n]
            s -= old
            s2 -= old * old
        if i >= n - 1:
            m = s / n
            mean[i] = m
            sd[i] = math.sqrt(max(s2 / n - m * m, 0.0))
    return mean, sd


@njit(cache=True)
def bucket_sma(finals, bucket, close, n):  # pragma: no cover - compiled
    """Per 1-minute row: (sum of the n-1 finished bucket closes before its bucket + its close)/n;
    `bucket[i]` is the row's bucket number, `finals` the buckets' last closes."""
    out = np.full(len(close), np.nan)
    # running sum of the last n-1 finished closes, as of each bucket's start
    before = np.full(len(finals) + 1, np.nan)
    s = 0.0
    for b in range(len(finals) + 1):
        if b >= n - 1:
            before[b] = s
        if b < len(finals):
            s += finals[b]
            if b >= n - 1:
                s -= finals[b - (n - 1)]
    for i in range(len(close)):
        b = bucket[i]
        if b >= n - 1:
            out[i] = (before[b] + close[i]) / n
    return out


@njit(cache=True)
def rsi(c, n):  # pragma: no cover - compiled
    out = np.full(len(c), np.nan)
    gain = 0.0
    loss = 0.0
    for i in range(1, len(c)):
        count = i  # changes seen so far
        d = c[i] - c[i - 1]
        g = d if d > 0 else 0.0
        lo = -d if d <= 0 else 0.0
        if count <= n:
            gain += g
            loss += lo
            if count == n:
                gain /= n
                loss /= n
        else:
            gain = (gain * (n - 1) + g) / n
            loss = (loss * (n - 1) + lo) / n
        if count >= n:
            total = gain + loss
            out[i] = 100.0 * gain / total if total != 0 else 0.0
    return out


@njit(cache=True)
def stoch(h, lo, c, hh, ll):  # pragma: no cover - compiled
    """Slow %K and %D (3-bar means) from the n-bar highest high / lowest low."""
    k = np.full(len(c), np.nan)
    d = np.full(len(c), np.nan)
    fast = np.full(len(c), np.nan)
    slow = np.full(len(c), np.nan)
    nf = 0
    ns = 0
    for i in range(len(c)):
        if hh[i] != hh[i]:
            continue
        span = hh[i] - ll[i]
        fast[i] = 100.0 * (c[i] - ll[i]) / span if span != 0 else 0.0
        nf += 1
        if nf >= 3:
            slow[i] = (fast[i - 2] + fast[i - 1] + fast[i]) / 3.0
            ns += 1
            if ns >= 3:
                k[i] = slow[i]
                d[i] = (slow[i - 2] + slow[i - 1] + slow[i]) / 3.0
    return k, d


@njit(cache=True)
def adx(h, lo, c, n):  # pragma: no cover - compiled
    m = len(c)
    a = np.full(m, np.nan)
    pdi_out = np.full(m, np.nan)
    mdi_out = np.full(m, np.nan)
    trs = 0.0
    pds = 0.0
    mds = 0.0
    count = 0
    dx_count = 0
    dx_sum = 0.0
    value = np.nan
    for i in range(1, m):
        up = h[i] - h[i - 1]
        down = lo[i - 1] - lo[i]
        pdm = up if (up > down and up > 0) else 0.0
        mdm = down if (down > up and down > 0) else 0.0
        pc = c[i - 1]
        tr = max(h[i] - lo[i], abs(h[i] - pc), abs(lo[i] - pc))
        count += 1
        if count < n:
            trs += tr
            pds += pdm
            mds += mdm
            continue
        if count == n:
            trs += tr
            pds += pdm
            mds += mdm
        else:
            trs = trs - trs / n + tr
            pds = pds - pds / n + pdm
            mds = mds - mds / n + mdm
        if trs != 0:
            p = 100.0 * pds / trs
            q = 100.0 * mds / trs
            s = p + q
            dx = 100.0 * abs(p - q) / s if s != 0 else 0.0
        else:
            p = 0.0
            q = 0.0
            dx = 0.0
        dx_count += 1
        if dx_count < n:
            dx_sum += dx
        elif dx_count == n:
            dx_sum += dx
            value = dx_sum / n
        else:
            value = (value * (n - 1) + dx) / n
        if value == value:
            a[i] = value
            pdi_out[i] = p
            mdi_out[i] = q
    return a, pdi_out, mdi_out


@njit(cache=True)
def session_cumsum(x, first):  # pragma: no cover - compiled
    """Running sum restarting where `first` is True (a plain left-to-right sum, like the
    engine's session accumulators; pandas' group cumsum compensates and rounds differently)."""
    out = np.empty(len(x))
    s = 0.0
    for i in range(len(x)):
        if first[i]:
            s = 0.0
        s += x[i]
        out[i] = s
    return out
