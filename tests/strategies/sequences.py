"""Hand-built bar sequences, each made so one setup fires on one known bar.

Bars: open = previous close, high = max(open, close) + up, low = min(open, close) - down.
Warm-up sessions trend up 0.01 per bar so EMAs, ATR and the 5/15-minute EMAs are available and
ordered (ema_20 > ema_50, higher-timeframe spreads > 0) when the pattern starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from marketdata.types import BarData
from tests.strategies.conftest import et

SESSIONS = [date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)]
UP, DOWN = 0.02, 0.08  # asymmetric wicks: ATR = 0.10, hod - close = 0.02 on a rising bar


@dataclass
class Sequence:
    bars: list[BarData]
    expected: datetime  # the bar START on whose close the setup must fire


def _bars(symbol, day, closes, volumes, start_price, up=UP, down=DOWN):
    out = []
    prev = start_price
    t0 = et(day, "09:30")
    for i, (c, v) in enumerate(zip(closes, volumes, strict=True)):
        out.append(
            BarData(
                symbol=symbol,
                ts=t0 + timedelta(minutes=i),
                open=prev,
                high=max(prev, c) + up,
                low=min(prev, c) - down,
                close=c,
                volume=v,
                source="replay",
            )
        )
        prev = c
    return out


def trend_sessions(symbol: str, days=SESSIONS[:2], start=100.0, step=0.01):
    """Full regular sessions trending up `step` per bar; returns (bars, last close)."""
    bars, price = [], start
    for day in days:
        closes = [price + step * (i + 1) for i in range(390)]
        bars += _bars(symbol, day, closes, [1000.0] * 390, price)
        price = closes[-1]
    return bars, price


def ema_cross(symbol="SPY") -> Sequence:
    """60 flat bars (ema_20 == ema_50 == 100 exactly), then one bar up: the cross."""
    closes = [100.0] * 60 + [101.0] + [101.0] * 20
    bars = _bars(symbol, SESSIONS[0], closes, [1000.0] * len(closes), 100.0, 0.05, 0.05)
    return Sequence(bars, bars[60].ts)


def vwap_reclaim(symbol="SPY") -> Sequence:
    """Rising 0.1/bar for 60 bars, one dip under vwap, then a reclaim on double volume."""
    closes = (
        [100.0 + 0.1 * i for i in range(60)] + [102.5, 106.2] + [106.3 + 0.1 * i for i in range(20)]
    )
    volumes = [1000.0] * 61 + [2000.0] + [1000.0] * 20
    bars = _bars(symbol, SESSIONS[0], closes, volumes, 100.0)
    return Sequence(bars, bars[61].ts)


def sigma_fade(symbol="SPY", hold=False) -> Sequence:
    """Rising 0.01/bar (closes above vwap), then one bar closes under vwap - 1 sigma; then the
    price recovers (or, with `hold`, stays down so the condition keeps holding)."""
    after = [100.1] * 30 if hold else [100.7 + 0.01 * i for i in range(5)]
    closes = [100.0 + 0.01 * i for i in range(61)] + [100.1] + after
    bars = _bars(symbol, SESSIONS[0], closes, [1000.0] * len(closes), 100.0, 0.05, 0.05)
    return Sequence(bars, bars[61].ts)


def hod_fail(symbol="SPY", hold=False) -> Sequence:
    """Rising 0.01/bar (hod - close = 0.02 < 0.5 ATR), then a 0.1 pullback above vwap; then new
    highs (or, with `hold`, the pullback persists)."""
    after = [100.5] * 30 if hold else [100.61 + 0.01 * i for i in range(5)]
    closes = [100.0 + 0.01 * i for i in range(61)] + [100.5] + after
    bars = _bars(symbol, SESSIONS[0], closes, [1000.0] * len(closes), 100.0)
    return Sequence(bars, bars[61].ts)


def hod_fail_twice(symbol="SPY") -> Sequence:
    """hod_fail, then the price climbs to a new high (100.8) and fails again (100.5)."""
    closes = [100.0 + 0.01 * i for i in range(61)] + [100.5] * 5
    closes += [100.6, 100.7, 100.8] + [100.5] * 5
    bars = _bars(symbol, SESSIONS[0], closes, [1000.0] * len(closes), 100.0)
    seq = Sequence(bars, bars[61].ts)
    seq.expected_all = [bars[61].ts, bars[69].ts]
    return seq


def orb(symbol="SPY") -> Sequence:
    """Two trend sessions, then a range 09:30-10:14 and a breakout at 10:15 on triple volume."""
    warm, price = trend_sessions(symbol)
    pattern = [price + (0.1 if i % 2 else 0.0) for i in range(45)]
    pattern += [price + 0.6] + [price + 0.6] * 10
    volumes = [1000.0] * 45 + [3000.0] + [1000.0] * 10
    bars = warm + _bars(symbol, SESSIONS[2], pattern, volumes, price)
    return Sequence(bars, bars[len(warm) + 45].ts)


def trend_pullback(symbol="SPY") -> Sequence:
    """Three trend sessions, the last one dips just under ema_20 at 11:00."""
    warm, price = trend_sessions(symbol)
    closes = [price + 0.01 * (i + 1) for i in range(90)]
    closes.append(closes[-1] - 0.15)  # ema_20 lags ~0.095 below: the close dips 0.055 under it
    closes += [closes[-1] + 0.3 + 0.01 * i for i in range(10)]
    bars = warm + _bars(symbol, SESSIONS[2], closes, [1000.0] * len(closes), price)
    return Sequence(bars, bars[len(warm) + 90].ts)


def vwap_mean(symbol="SPY") -> Sequence:
    """Three trend sessions, the last one drops 0.75 at 11:00: 0.3 under vwap (>= 0.5 ATR)."""
    warm, price = trend_sessions(symbol)
    closes = [price + 0.01 * (i + 1) for i in range(90)]
    closes.append(closes[-1] - 0.75)
    closes += [closes[-1] + 0.8 + 0.01 * i for i in range(10)]
    volumes = [1000.0] * len(closes)
    bars = warm + _bars(symbol, SESSIONS[2], closes, volumes, price)
    return Sequence(bars, bars[len(warm) + 90].ts)


BUILDERS = {
    "EMA_CROSS": ema_cross,
    "VWAP_RECLAIM": vwap_reclaim,
    "SIGMA_FADE": sigma_fade,
    "HOD_FAIL": hod_fail,
    "ORB": orb,
    "TREND_PULLBACK": trend_pullback,
    "VWAP_MEAN": vwap_mean,
}
