"""The feature library setups may name, beyond the engine's base row (DESIGN §3).

Each feature is computed only when an enabled setup names it, and exists twice: an incremental
calculator (O(1) work per regular-session bar, fed by `FeatureEngine`) and a vectorised twin over a
whole symbol's columns (fast backtest, preview). Tests pin each one to TA-Lib (or an independent
pandas definition where TA-Lib has none) and the two forms to each other.

Names (N is any whole number >= 1):
- `ema_N`, `sma_N`; `ema5m_N`, `sma5m_N`, `ema15m_N`, `sma15m_N` (5/15-minute bars built from the
  1-minute stream, the forming bar's close as the newest point); `ema1m_N` = `ema_N`.
- `rsi_N` (Wilder), `atr_N` (Wilder, like `atr_14`), `adx_N`, `plus_di_N`, `minus_di_N`.
- `macd`, `macd_signal`, `macd_hist` (12/26/9, TA-Lib's alignment of the two EMAs).
- `bb_upper_N`, `bb_mid_N`, `bb_lower_N` (N-bar SMA +- 2 population standard deviations).
- `stoch_k_N`, `stoch_d_N` (TA-Lib STOCH: fast %K over N bars, slow %K = 3-bar SMA, %D = 3-bar
  SMA of that).
- `highest_N`, `lowest_N`: highest high / lowest low of the last N bars, this one included.
- `prior_day_high`, `prior_day_low`, `prior_day_close`: of the previous regular session.
- `premarket_high`, `premarket_low`: 04:00-09:30 New York bars of the same day (NaN if none).
- `opening_gap`: today's first regular open / prior_day_close - 1.
- `vwap_slope`, `vwap_slope_N`: vwap / vwap N (default 5) bars earlier this session - 1.
- events (true/false): `new_high` / `new_low`: this bar's high (low) beats the session's high (low)
  so far; never on the session's first bar.
Indicators run over the regular-session stream across days (like the base EMAs and ATR);
session-anchored ones reset at 09:30.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from strategies.features.columns import BASE_NUMERIC

NAN = float("nan")


# (regex, spec kind) -> names produced by one calculator
_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"(ema|sma)(1m|5m|15m)?_(\d+)"), "ma"),
    (re.compile(r"rsi_(\d+)"), "rsi"),
    (re.compile(r"atr_(\d+)"), "atr"),
    (re.compile(r"(adx|plus_di|minus_di)_(\d+)"), "adx"),
    (re.compile(r"macd|macd_signal|macd_hist"), "macd"),
    (re.compile(r"bb_(upper|mid|lower)_(\d+)"), "bb"),
    (re.compile(r"stoch_(k|d)_(\d+)"), "stoch"),
    (re.compile(r"(highest|lowest)_(\d+)"), "extreme"),
    (re.compile(r"prior_day_(high|low|close)"), "prior_day"),
    (re.compile(r"premarket_(high|low)"), "premarket"),
    (re.compile(r"opening_gap"), "gap"),
    (re.compile(r"vwap_slope(?:_(\d+))?"), "vwap_slope"),
    (re.compile(r"new_(high|low)"), "new_extreme"),
]
EVENT_NAMES = ("new_high", "new_low")
_EXAMPLES = (
    "ema_9",
    "sma_200",
    "ema5m_9",
    "sma15m_20",
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
    "new_high",
    "new_low",
)


@dataclass(frozen=True, slots=True)
class Spec:
    """What one calculator computes: kind + parameters; `names` are the row keys it fills."""

    kind: str
    params: tuple

    @property
    def names(self) -> tuple[str, ...]:
        k, p = self.kind, self.params
        if k == "ma":
            ma, tf, n = p
            return (f"{ma}{tf}_{n}",) if tf else (f"{ma}_{n}",)
        if k == "rsi":
            return (f"rsi_{p[0]}",)
        if k == "atr":
            return (f"atr_{p[0]}",)
        if k == "adx":
            return tuple(f"{x}_{p[0]}" for x in ("adx", "plus_di", "minus_di"))
        if k == "macd":
            return ("macd", "macd_signal", "macd_hist")
        if k == "bb":
            return tuple(f"bb_{x}_{p[0]}" for x in ("upper", "mid", "lower"))
        if k == "stoch":
            return (f"stoch_k_{p[0]}", f"stoch_d_{p[0]}")
        if k == "extreme":
            return (f"{p[0]}_{p[1]}",)
        if k == "prior_day":
            return ("prior_day_high", "prior_day_low", "prior_day_close")
        if k == "premarket":
            return ("premarket_high", "premarket_low")
        if k == "gap":
            return ("opening_gap",)
        if k == "vwap_slope":
            return ("vwap_slope",) if p[1] else (f"vwap_slope_{p[0]}",)
        if k == "new_extreme":
            return ("new_high", "new_low")
        raise AssertionError(k)


def spec_of(name: str) -> Spec | None:
    """The calculator that produces feature `name` (None: a base feature or unknown)."""
    if name in BASE_NUMERIC:
        return None
    for pattern, kind in _PATTERNS:
        m = pattern.fullmatch(name)
        if not m:
            continue
        g = m.groups()
        if kind == "ma":
            tf = "" if g[1] in (None, "1m") else g[1]
            n = int(g[2])
            if n < 1:
                return None
            return Spec("ma", (g[0], tf, n))
        if kind in ("rsi", "atr"):
            return Spec(kind, (int(g[0]),)) if int(g[0]) >= 1 else None
        if kind in ("adx", "bb", "stoch"):
            return Spec(kind, (int(g[1]),)) if int(g[1]) >= 1 else None
        if kind == "extreme":
            return Spec(kind, (g[0], int(g[1]))) if int(g[1]) >= 1 else None
        if kind == "vwap_slope":
            n = int(g[0]) if g[0] else 5
            return Spec(kind, (n, g[0] is None)) if n >= 1 else None
        return Spec(kind, ())
    return None


def feature_kind(name: str) -> str | None:
    """ "number" or "bool" for a feature name setups may use; None when unknown."""
    if name in BASE_NUMERIC:
        return "number"
    if name == "ema1m_20" or name == "ema1m_50":
        return None  # spelled ema_20 / ema_50 (the base row)
    spec = spec_of(name)
    if spec is None:
        return None
    return "bool" if spec.kind == "new_extreme" else "number"


def known_feature_names() -> tuple[str, ...]:
    return BASE_NUMERIC + _EXAMPLES


def specs_for(names: Iterable[str]) -> list[Spec]:
    """The calculators needed for `names` (each once, in a stable order)."""
    out: dict[Spec, None] = {}
    for name in sorted(set(names)):
        spec = spec_of(name)
        if spec is not None:
            out[spec] = None
    return list(out)


# === incremental calculators ================================================================
class _Ema:
    __slots__ = ("n", "k", "count", "seed", "value")

    def __init__(self, n: int, alpha: float | None = None):
        self.n, self.k = n, (2.0 / (n + 1) if alpha is None else alpha)
        self.count, self.seed, self.value = 0, 0.0, NAN

    def push(self, x: float) -> float:
        self.count += 1
        if self.count < self.n:
            self.seed += x
        elif self.count == self.n:
            self.seed += x
            self.value = self.seed / self.n
        else:
            self.value = self.value + self.k * (x - self.value)
        return self.value


class _Window:
    """Sum and sum of squares of the last n values."""

    __slots__ = ("n", "buf", "s", "s2")

    def __init__(self, n: int):
        self.n, self.buf, self.s, self.s2 = n, deque(), 0.0, 0.0

    def push(self, x: float) -> bool:
        self.buf.append(x)
        self.s += x
        self.s2 += x * x
        if len(self.buf) > self.n:
            old = self.buf.popleft()
            self.s -= old
            self.s2 -= old * old
        return len(self.buf) == self.n


class _MonoExtreme:
    """Max (or min) of the last n values, O(1) amortised (monotonic deque)."""

    __slots__ = ("n", "q", "i", "sign")

    def __init__(self, n: int, highest: bool):
        self.n, self.q, self.i, self.sign = n, deque(), -1, 1.0 if highest else -1.0

    def push(self, x: float) -> float:
        self.i += 1
        v = self.sign * x
        q = self.q
        while q and q[-1][1] <= v:
            q.pop()
        q.append((self.i, v))
        if q[0][0] <= self.i - self.n:
            q.popleft()
        return self.sign * q[0][1] if self.i >= self.n - 1 else NAN


class _Calc:
    def push(self, row: dict) -> None:  # regular-session bar; writes its names into row
        raise NotImplementedError

    def outside(self, et_day, minute_et: int, high: float, low: float) -> None:
        """A bar outside the regular session (only premarket uses it)."""


class _MA(_Calc):
    """SMA/EMA of n closes; on 5/15-minute bars the finished bars' closes plus the forming
    bar's latest close (like the base `ema5m_20`)."""

    def __init__(self, ma: str, tf: str, n: int):
        self.name = f"{ma}{tf}_{n}"
        self.ma, self.n = ma, n
        self.bucket = {"": 1, "5m": 5, "15m": 15}[tf]
        self.key = None
        self.close = NAN
        self.ema = _Ema(n)
        self.window: deque = deque()  # sma: the last closes (n on 1m, n-1 finished otherwise)
        self.wsum = 0.0

    def _add(self, x: float, keep: int) -> None:
        self.window.append(x)
        self.wsum += x
        if len(self.window) > keep:
            self.wsum -= self.window.popleft()

    def push(self, row):
        c, n = row["close"], self.n
        if self.bucket == 1:
            if self.ma == "ema":
                row[self.name] = self.ema.push(c)
            else:
                self._add(c, n)
                row[self.name] = self.wsum / n if len(self.window) == n else NAN
            return
        key = (row["session_date"], row["minute"] // self.bucket)
        if self.key is not None and key != self.key:
            if self.ma == "ema":
                self.ema.push(self.close)
            elif n > 1:
                self._add(self.close, n - 1)
        self.key, self.close = key, c
        if self.ma == "ema":
            e = self.ema
            if e.count >= e.n:
                row[self.name] = e.value + e.k * (c - e.value)
            elif e.count == e.n - 1:
                row[self.name] = (e.seed + c) / e.n
            else:
                row[self.name] = NAN
        elif n == 1:
            row[self.name] = c
        else:
            row[self.name] = (self.wsum + c) / n if len(self.window) == n - 1 else NAN


class _Rsi(_Calc):
    def __init__(self, n: int):
        self.name, self.n = f"rsi_{n}", n
        self.prev = NAN
        self.count = 0
        self.gain = self.loss = 0.0

    def push(self, row):
        c = row["close"]
        out = NAN
        if self.prev == self.prev:
            d = c - self.prev
            g, lo = (d, 0.0) if d > 0 else (0.0, -d)
            self.count += 1
            n = self.n
            if self.count <= n:
                self.gain += g
                self.loss += lo
                if self.count == n:
                    self.gain /= n
                    self.loss /= n
            else:
                self.gain = (self.gain * (n - 1) + g) / n
                self.loss = (self.loss * (n - 1) + lo) / n
            if self.count >= n:
                total = self.gain + self.loss
                out = 100.0 * self.gain / total if total != 0 else 0.0
        self.prev = c
        row[self.name] = out


class _Atr(_Calc):
    """Wilder's ATR over true ranges (the first bar's range is high - low), seeded with the
    mean of the first n ranges: the definition of the base `atr_14`."""

    def __init__(self, n: int):
        self.name = f"atr_{n}"
        self.ema = _Ema(n, alpha=1.0 / n)
        self.pc = NAN

    def push(self, row):
        h, lo, pc = row["high"], row["low"], self.pc
        tr = max(h - lo, abs(h - pc), abs(lo - pc)) if pc == pc else h - lo
        self.pc = row["close"]
        row[self.name] = self.ema.push(tr)


class _Adx(_Calc):
    """Wilder's ADX (TA-Lib's recursion: smoothed sums, DX seeded with its n-bar mean)."""

    def __init__(self, n: int):
        self.n = n
        self.names = (f"adx_{n}", f"plus_di_{n}", f"minus_di_{n}")
        self.ph = self.pl = self.pc = NAN
        self.count = 0
        self.tr = self.pdm = self.mdm = 0.0
        self.dx_count = 0
        self.dx_sum = 0.0
        self.adx = NAN

    def push(self, row):
        h, lo, c = row["high"], row["low"], row["close"]
        adx = pdi = mdi = NAN
        if self.pc == self.pc:
            up, down = h - self.ph, self.pl - lo
            pdm = up if up > down and up > 0 else 0.0
            mdm = down if down > up and down > 0 else 0.0
            tr = max(h - lo, abs(h - self.pc), abs(lo - self.pc))
            n = self.n
            self.count += 1
            if self.count < n:
                self.tr += tr
                self.pdm += pdm
                self.mdm += mdm
            else:
                if self.count == n:
                    self.tr += tr
                    self.pdm += pdm
                    self.mdm += mdm
                else:
                    self.tr = self.tr - self.tr / n + tr
                    self.pdm = self.pdm - self.pdm / n + pdm
                    self.mdm = self.mdm - self.mdm / n + mdm
                if self.tr != 0:
                    pdi = 100.0 * self.pdm / self.tr
                    mdi = 100.0 * self.mdm / self.tr
                    s = pdi + mdi
                    dx = 100.0 * abs(pdi - mdi) / s if s != 0 else 0.0
                else:
                    pdi = mdi = dx = 0.0
                self.dx_count += 1
                if self.dx_count < n:
                    self.dx_sum += dx
                elif self.dx_count == n:
                    self.dx_sum += dx
                    self.adx = self.dx_sum / n
                else:
                    self.adx = (self.adx * (n - 1) + dx) / n
                adx = self.adx
                if adx != adx:  # +DI/-DI are reported once ADX is (as the vectorised twin)
                    pdi = mdi = NAN
        self.ph, self.pl, self.pc = h, lo, c
        row[self.names[0]], row[self.names[1]], row[self.names[2]] = adx, pdi, mdi


class _Macd(_Calc):
    """MACD 12/26/9 as TA-Lib aligns it: both EMAs start on the 26th close, the fast one
    seeded with the mean of the 12 closes ending there; the signal EMA (9) of the MACD line."""

    FAST, SLOW, SIGNAL = 12, 26, 9

    def __init__(self):
        self.buf: deque = deque(maxlen=self.SLOW)
        self.count = 0
        self.fast = self.slow = NAN
        self.sig = _Ema(self.SIGNAL)

    def push(self, row):
        c = row["close"]
        self.count += 1
        kf, ks = 2.0 / (self.FAST + 1), 2.0 / (self.SLOW + 1)
        macd = sig = hist = NAN
        if self.count < self.SLOW:
            self.buf.append(c)
        else:
            if self.count == self.SLOW:
                self.buf.append(c)
                vals = list(self.buf)
                self.slow = sum(vals) / self.SLOW
                self.fast = sum(vals[-self.FAST :]) / self.FAST
            else:
                self.fast = self.fast + kf * (c - self.fast)
                self.slow = self.slow + ks * (c - self.slow)
            macd = self.fast - self.slow
            sig = self.sig.push(macd)
            hist = macd - sig
            if sig != sig:
                macd = hist = NAN
        row["macd"], row["macd_signal"], row["macd_hist"] = macd, sig, hist


class _Bollinger(_Calc):
    def __init__(self, n: int):
        self.n = n
        self.names = (f"bb_upper_{n}", f"bb_mid_{n}", f"bb_lower_{n}")
        self.w = _Window(n)

    def push(self, row):
        if self.w.push(row["close"]):
            mean = self.w.s / self.n
            sd = math.sqrt(max(self.w.s2 / self.n - mean * mean, 0.0))
            row[self.names[0]], row[self.names[1]], row[self.names[2]] = (
                mean + 2.0 * sd,
                mean,
                mean - 2.0 * sd,
            )
        else:
            row[self.names[0]] = row[self.names[1]] = row[self.names[2]] = NAN


class _Stoch(_Calc):
    def __init__(self, n: int):
        self.names = (f"stoch_k_{n}", f"stoch_d_{n}")
        self.hi = _MonoExtreme(n, True)
        self.lo = _MonoExtreme(n, False)
        self.fast: deque = deque(maxlen=3)
        self.slow: deque = deque(maxlen=3)

    def push(self, row):
        hh, ll = self.hi.push(row["high"]), self.lo.push(row["low"])
        k = d = NAN
        if hh == hh:
            span = hh - ll
            self.fast.append(100.0 * (row["close"] - ll) / span if span != 0 else 0.0)
            if len(self.fast) == 3:
                self.slow.append(sum(self.fast) / 3.0)
                if len(self.slow) == 3:
                    k = self.slow[-1]
                    d = sum(self.slow) / 3.0
        row[self.names[0]], row[self.names[1]] = k, d


class _Extreme(_Calc):
    def __init__(self, which: str, n: int):
        self.name = f"{which}_{n}"
        self.which = "high" if which == "highest" else "low"
        self.m = _MonoExtreme(n, which == "highest")

    def push(self, row):
        row[self.name] = self.m.push(row[self.which])


class _PriorDay(_Calc):
    def __init__(self):
        self.day = None
        self.h = self.lo = self.c = NAN
        self.prior = (NAN, NAN, NAN)

    def push(self, row):
        d = row["session_date"]
        if d != self.day:
            if self.day is not None:
                self.prior = (self.h, self.lo, self.c)
            self.day, self.h, self.lo = d, row["high"], row["low"]
        else:
            self.h, self.lo = max(self.h, row["high"]), min(self.lo, row["low"])
        self.c = row["close"]
        row["prior_day_high"], row["prior_day_low"], row["prior_day_close"] = self.prior


PREMARKET_START_MIN = 4 * 60  # 04:00 New York


class _Premarket(_Calc):
    def __init__(self):
        self.day = None
        self.h = self.lo = NAN

    def outside(self, et_day, minute_et, high, low):
        if not PREMARKET_START_MIN <= minute_et < 9 * 60 + 30:
            return
        if et_day != self.day:
            self.day, self.h, self.lo = et_day, high, low
        else:
            self.h, self.lo = max(self.h, high), min(self.lo, low)

    def push(self, row):
        same = row["session_date"] == self.day
        row["premarket_high"] = self.h if same else NAN
        row["premarket_low"] = self.lo if same else NAN


class _Gap(_Calc):
    def __init__(self):
        self.prior = _PriorDay()
        self.day = None
        self.gap = NAN

    def push(self, row):
        scratch = {k: row[k] for k in ("session_date", "high", "low", "close")}
        self.prior.push(scratch)
        if row["session_date"] != self.day:
            self.day = row["session_date"]
            pc = scratch["prior_day_close"]
            self.gap = row["open"] / pc - 1.0 if pc == pc and pc != 0 else NAN
        row["opening_gap"] = self.gap


class _VwapSlope(_Calc):
    def __init__(self, n: int, default_name: bool):
        self.n = n
        self.name = "vwap_slope" if default_name else f"vwap_slope_{n}"
        self.buf: deque = deque(maxlen=n + 1)
        self.day = None

    def push(self, row):
        if row["session_date"] != self.day:
            self.day = row["session_date"]
            self.buf.clear()
        v = row["vwap"]
        self.buf.append(v)
        old = self.buf[0]
        row[self.name] = v / old - 1.0 if len(self.buf) == self.n + 1 and old != 0 else NAN


class _NewExtreme(_Calc):
    """new_high/new_low read the base hod/lod: the session's extreme before this bar is the
    previous row's hod (the same session)."""

    def __init__(self):
        self.day = None
        self.hod = self.lod = NAN

    def push(self, row):
        d = row["session_date"]
        first = d != self.day
        row["new_high"] = (not first) and row["high"] > self.hod
        row["new_low"] = (not first) and row["low"] < self.lod
        self.day, self.hod, self.lod = d, row["hod"], row["lod"]


def calculator(spec: Spec) -> _Calc:
    k, p = spec.kind, spec.params
    if k == "ma":
        return _MA(*p)
    if k == "rsi":
        return _Rsi(p[0])
    if k == "atr":
        return _Atr(p[0])
    if k == "adx":
        return _Adx(p[0])
    if k == "macd":
        return _Macd()
    if k == "bb":
        return _Bollinger(p[0])
    if k == "stoch":
        return _Stoch(p[0])
    if k == "extreme":
        return _Extreme(*p)
    if k == "prior_day":
        return _PriorDay()
    if k == "premarket":
        return _Premarket()
    if k == "gap":
        return _Gap()
    if k == "vwap_slope":
        return _VwapSlope(*p)
    if k == "new_extreme":
        return _NewExtreme()
    raise AssertionError(k)


class FeatureLibrary:
    """The incremental calculators one symbol's setups need; `FeatureEngine` feeds it."""

    def __init__(self, names: Iterable[str] = ()):
        self.specs = specs_for(names)
        self.calcs = [calculator(s) for s in self.specs]
        self.premarket = [c for c in self.calcs if isinstance(c, _Premarket)]

    def __bool__(self) -> bool:
        return bool(self.calcs)

    def push(self, row: dict) -> None:
        for c in self.calcs:
            c.push(row)

    def outside(self, et_day, minute_et: int, high: float, low: float) -> None:
        for c in self.premarket:
            c.outside(et_day, minute_et, high, low)


# === vectorised twins =======================================================================
# Sequential kernels (strategies.features.kernels) do the arithmetic of the calculators above
# in the same order, so both paths give the same floats (a comparison never flips between them).
def _kernels():
    from strategies.features import kernels

    return kernels


def _f(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=float)


def _ema(x: np.ndarray, n: int, alpha: float | None = None) -> np.ndarray:
    from strategies.features.vectorised import ema_seeded

    return ema_seeded(x, n, alpha)


def _rolling(x: np.ndarray, n: int, how: str) -> np.ndarray:
    r = pd.Series(x).rolling(n, min_periods=n)
    return getattr(r, how)().to_numpy()


def _shift(x: np.ndarray, k: int = 1, fill=np.nan) -> np.ndarray:
    out = np.full(len(x), fill, dtype=float)
    if k < len(x):
        out[k:] = x[:-k]
    return out


def _bucketed(cols: dict, c: np.ndarray, size: int, ma: str, n: int) -> np.ndarray:
    """5/15-minute SMA/EMA per 1-minute row (buckets aligned to 09:30 within each session)."""
    sess, minute = cols["_sess"], cols["minute"].astype(np.int64)
    keys = sess * 1000 + minute // size
    if ma == "ema":
        from strategies.features.vectorised import _higher_timeframe_ema

        return _higher_timeframe_ema(keys, c, n)
    if n == 1:
        return c.copy()
    new = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, bool)
    bucket = np.cumsum(new) - 1
    last = np.r_[new[1:], True] if len(keys) else new
    return _kernels().bucket_sma(_f(c[last]), bucket.astype(np.int64), _f(c), n)


def _session_start(sess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is the session's first row, index of each row's session start)."""
    n = len(sess)
    idx = np.arange(n)
    first = np.r_[True, sess[1:] != sess[:-1]] if n else np.zeros(0, bool)
    start = np.maximum.accumulate(np.where(first, idx, 0)) if n else idx
    return first, start


def vector_column(spec: Spec, cols: dict) -> dict[str, np.ndarray]:
    """The vectorised twin of `calculator(spec)` over one symbol's regular-session rows
    (`cols`: name -> array, plus `_sess` and, for premarket, `_pre_high`/`_pre_low`)."""
    k, p = spec.kind, spec.params
    c = _f(cols["close"])
    h = _f(cols["high"]) if "high" in cols else None
    lo = _f(cols["low"]) if "low" in cols else None
    kern = _kernels()
    with np.errstate(invalid="ignore", divide="ignore"):
        if k == "ma":
            ma, tf, n = p
            name = spec.names[0]
            if tf:
                return {name: _bucketed(cols, c, int(tf[:-1]), ma, n)}
            return {name: _ema(c, n) if ma == "ema" else kern.window_sum(c, n) / n}
        if k == "rsi":
            return {spec.names[0]: kern.rsi(c, p[0])}
        if k == "atr":
            n = p[0]
            pc = _shift(c)
            tr = np.fmax(h - lo, np.fmax(np.abs(h - pc), np.abs(lo - pc)))
            return {spec.names[0]: _ema(tr, n, alpha=1.0 / n)}
        if k == "adx":
            return dict(zip(spec.names, kern.adx(h, lo, c, p[0]), strict=True))
        if k == "macd":
            out = {name: np.full(len(c), np.nan) for name in spec.names}
            if len(c) >= 26:
                slow = _ema(c, 26)
                seed = 0.0
                for x in c[14:26].tolist():  # the calculator's seed: a left-to-right sum
                    seed += x
                fast = kern.ema_from(c, 25, seed / 12, 2.0 / 13)
                line = fast - slow
                sig = np.full(len(c), np.nan)
                sig[25:] = _ema(line[25:], 9)
                ok = ~np.isnan(sig)
                out["macd"] = np.where(ok, line, np.nan)
                out["macd_signal"] = sig
                out["macd_hist"] = np.where(ok, line - sig, np.nan)
            return out
        if k == "bb":
            mean, sd = kern.window_mean_sd(c, p[0])
            upper, mid, lower = spec.names
            return {upper: mean + 2.0 * sd, mid: mean, lower: mean - 2.0 * sd}
        if k == "stoch":
            n = p[0]
            hh, ll = _f(_rolling(h, n, "max")), _f(_rolling(lo, n, "min"))
            return dict(zip(spec.names, kern.stoch(h, lo, c, hh, ll), strict=True))
        if k == "extreme":
            which, n = p
            src = h if which == "highest" else lo
            return {spec.names[0]: _rolling(src, n, "max" if which == "highest" else "min")}
        sess = cols["_sess"]
        g = pd.Series(sess)
        first, start = _session_start(sess)
        if k == "prior_day":
            day_h = pd.Series(h).groupby(g).max().to_numpy()
            day_l = pd.Series(lo).groupby(g).min().to_numpy()
            day_c = pd.Series(c).groupby(g).last().to_numpy()
            ph, pl, pcl = (_shift(x)[sess] for x in (day_h, day_l, day_c))
            return dict(zip(spec.names, (ph, pl, pcl), strict=True))
        if k == "premarket":
            return {"premarket_high": cols["_pre_high"], "premarket_low": cols["_pre_low"]}
        if k == "gap":
            first_open = pd.Series(cols["open"]).groupby(g).first().to_numpy()
            day_c = pd.Series(c).groupby(g).last().to_numpy()
            pc = _shift(day_c)
            gap = np.where((pc == pc) & (pc != 0), first_open / pc - 1.0, np.nan)
            return {"opening_gap": gap[sess]}
        if k == "vwap_slope":
            n = p[0]
            v = _f(cols["vwap"])
            old = _shift(v, n)
            old[np.arange(len(v)) - start < n] = np.nan
            return {spec.names[0]: np.where(old != 0, v / old - 1.0, np.nan)}
        if k == "new_extreme":
            ph, pl = _shift(cols["hod"]), _shift(cols["lod"])
            return {"new_high": ~first & (h > ph), "new_low": ~first & (lo < pl)}
    raise AssertionError(k)
