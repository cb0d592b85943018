"""The functions a setup expression may call, each with a per-bar and a vectorised form.

History functions (prev, crosses_above/below, rising/falling, bars_since, becomes, first_since)
look back within the current regular session only: on a session's first bar there is no
previous bar, so yesterday's close never "crosses" today's vwap. Their per-bar form keeps O(1)
state and must see every bar (the compiler never short-circuits around them); their vectorised
form is the same definition over whole columns, pinned equal by tests.

Vectorised forms take a `Columns` (the frame's arrays plus `sess`, the session number of each
row, and `start`, the row index where that row's session starts).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

NAN = float("nan")
NUM, BOOL, STR, TIME, SET = "number", "bool", "text", "time", "symbols"


@dataclass(frozen=True, slots=True)
class Fn:
    args: tuple[str, ...]  # argument types; a trailing "?" marks an optional one
    returns: str
    stateful: bool
    const_args: tuple[int, ...] = ()  # positions that must be literal constants
    doc: str = ""


FUNCTIONS: dict[str, Fn] = {
    "abs": Fn((NUM,), NUM, False, doc="absolute value"),
    "min": Fn((NUM, NUM), NUM, False, doc="the smaller of two numbers"),
    "max": Fn((NUM, NUM), NUM, False, doc="the larger of two numbers"),
    "time_between": Fn(
        (TIME, TIME), BOOL, False, (0, 1), "the bar's close (New York) is within [start, end]"
    ),
    "after": Fn((TIME,), BOOL, False, (0,), "the bar's close (New York) is at or after t"),
    "before": Fn((TIME,), BOOL, False, (0,), "the bar's close (New York) is before t"),
    "symbol_in": Fn((SET,), BOOL, False, (0,), "the setup runs on one of these symbols"),
    "prev": Fn((NUM, "number?"), NUM, True, (1,), "value n bars ago in this session (n=1)"),
    "crosses_above": Fn((NUM, NUM), BOOL, True, doc="a was <= b on the previous bar, a > b now"),
    "crosses_below": Fn((NUM, NUM), BOOL, True, doc="a was >= b on the previous bar, a < b now"),
    "rising": Fn((NUM, NUM), BOOL, True, (1,), "x is above its value n bars ago"),
    "falling": Fn((NUM, NUM), BOOL, True, (1,), "x is below its value n bars ago"),
    "bars_since": Fn((BOOL,), NUM, True, doc="bars since cond was last true this session"),
    "becomes": Fn((BOOL,), BOOL, True, doc="cond is true now and was false on the previous bar"),
    "first_since": Fn(
        (BOOL, BOOL), BOOL, True, doc="the first bar cond holds since event last happened"
    ),
}


# --- per-bar ------------------------------------------------------------------------------
def div(a: float, b: float) -> float:
    """a / b with IEEE results for a zero divisor (like numpy): +-inf, or NaN for 0/0."""
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return NAN
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def bar_prev(x: Callable, n: int) -> Callable:
    buf: deque = deque(maxlen=n + 1)
    day = [None]

    def f(row):
        v = x(row)
        d = row["session_date"]
        if d != day[0]:
            buf.clear()
            day[0] = d
        buf.append(v)
        return buf[0] if len(buf) == n + 1 else NAN

    return f


def bar_cross(a: Callable, b: Callable, above: bool) -> Callable:
    state = [None, NAN, NAN]  # day, previous a, previous b

    def f(row):
        va, vb = a(row), b(row)
        d = row["session_date"]
        if d != state[0]:
            state[0], pa, pb = d, NAN, NAN
        else:
            pa, pb = state[1], state[2]
        state[1], state[2] = va, vb
        if above:
            return pa <= pb and va > vb
        return pa >= pb and va < vb

    return f


def bar_rising(x: Callable, n: int, up: bool) -> Callable:
    """rising/falling: x now vs x n bars ago (session), evaluating x once per bar."""
    buf: deque = deque(maxlen=n + 1)
    day = [None]

    def f(row):
        v = x(row)
        d = row["session_date"]
        if d != day[0]:
            buf.clear()
            day[0] = d
        buf.append(v)
        if len(buf) < n + 1:
            return False
        return v > buf[0] if up else v < buf[0]

    return f


def bar_bars_since(c: Callable) -> Callable:
    state = [None, -1, None]  # day, bar number in session, last bar number where c held

    def f(row):
        v = c(row)
        d = row["session_date"]
        if d != state[0]:
            state[0], state[1], state[2] = d, -1, None
        state[1] += 1
        if v:
            state[2] = state[1]
        return NAN if state[2] is None else float(state[1] - state[2])

    return f


def bar_becomes(c: Callable) -> Callable:
    state = [None, None]  # day, previous value (None on the session's first bar)

    def f(row):
        v = bool(c(row))
        d = row["session_date"]
        if d != state[0]:
            state[0], prev = d, None
        else:
            prev = state[1]
        state[1] = v
        return prev is not None and v and not prev

    return f


def bar_first_since(c: Callable, e: Callable) -> Callable:
    state = [None, False, False]  # day, event seen this session, fired since that event

    def f(row):
        vc, ve = bool(c(row)), bool(e(row))
        d = row["session_date"]
        if d != state[0]:
            state[0], state[1], state[2] = d, False, False
        if ve:
            state[1], state[2] = True, False
        out = state[1] and not state[2] and vc
        if out:
            state[2] = True
        return out

    return f


# --- vectorised -----------------------------------------------------------------------------
@dataclass
class Columns:
    """Arrays of one symbol's regular-session rows in time order, plus session geometry."""

    data: dict[str, np.ndarray]
    sess: np.ndarray  # session number of each row
    close_minute: np.ndarray  # minutes since midnight (New York) of each bar's close
    symbol: str

    def __post_init__(self) -> None:
        n = len(self.sess)
        self.index = np.arange(n)
        first = np.r_[True, self.sess[1:] != self.sess[:-1]] if n else np.zeros(0, bool)
        self.first = first
        self.start = np.maximum.accumulate(np.where(first, self.index, 0)) if n else self.index

    def __len__(self) -> int:
        return len(self.sess)


def vec_prev(cols: Columns, x: np.ndarray, n: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    out = np.full(len(x), np.nan)
    if n < len(x):
        out[n:] = x[:-n] if n else x
    out[cols.index - cols.start < n] = np.nan
    return out


def vec_cross(cols: Columns, a, b, above: bool) -> np.ndarray:
    pa, pb = vec_prev(cols, a, 1), vec_prev(cols, b, 1)
    with np.errstate(invalid="ignore"):
        if above:
            return (pa <= pb) & (a > b)
        return (pa >= pb) & (a < b)


def vec_rising(cols: Columns, x, n: int, up: bool) -> np.ndarray:
    before = vec_prev(cols, x, n)
    with np.errstate(invalid="ignore"):
        return (x > before) if up else (x < before)


def vec_bars_since(cols: Columns, c) -> np.ndarray:
    c = np.asarray(c, dtype=bool)
    last = np.maximum.accumulate(np.where(c, cols.index, -1)) if len(c) else cols.index
    return np.where(last >= cols.start, (cols.index - last).astype(float), np.nan)


def vec_becomes(cols: Columns, c) -> np.ndarray:
    c = np.asarray(c, dtype=bool)
    prev = np.r_[False, c[:-1]] if len(c) else c
    return c & ~prev & ~cols.first


def vec_first_since(cols: Columns, c, e) -> np.ndarray:
    c = np.asarray(c, dtype=bool)
    e = np.asarray(e, dtype=bool)
    out = np.zeros(len(c), dtype=bool)
    if not len(c):
        return out
    last_e = np.maximum.accumulate(np.where(e, cols.index, -1))
    cand = np.flatnonzero((last_e >= cols.start) & c)
    if cand.size:
        keys = last_e[cand]
        out[cand[np.r_[True, keys[1:] != keys[:-1]]]] = True
    return out
