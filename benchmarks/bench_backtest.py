"""Backtest benchmark: one year of 1-minute bars for 4 symbols, all setups, risk and exits.

Data: the shared SPY sessions (../shared/data/SPY_1m_2011-*.csv, with their pre/post-market
bars) tiled over the 250 sessions of 2023 (New York wall-clock times kept), each symbol starting
at a different session and scaled to its own price level; a seeded synthetic year when the
shared files are absent. No database is used.

Prints one JSON line for the event-driven mode (on the first `--event-symbols` symbols), then as
its LAST line {"name": "backtest", "bars": ..., "bars_per_s": ..., "mode": "fast"} (whole set).
Goal: >= 500,000 bars/s in fast mode. When backtesting.py is installed (requirements/dev.txt),
a line before the last compares it with our fast mode on an EMA cross over the same bars.
Wall-clock rates on a shared machine vary with its load, so the lines also give
`cpu_bars_per_s` (bars per second of this process's CPU time).

    .venv/bin/python benchmarks/bench_backtest.py [--event-symbols 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")

SYMBOLS = (("SPY", 1.0), ("QQQ", 0.42), ("IWM", 0.61), ("DIA", 0.93))
SHARED = ROOT.parent / "shared" / "data"


def _tiled_year(frames_src, *, offset: int, scale: float, year: int = 2023):
    import numpy as np
    import pandas as pd

    from analytics.bars import MARKET_TZ, bars_frame_from_data
    from marketdata.calendar import xnys
    from marketdata.types import BarData

    cal = xnys()
    target = cal.sessions_in_range(f"{year}-01-01", f"{year}-12-31")
    # source sessions: (date, bars of that New York date)
    source = []
    for frame in frames_src:
        local_day = frame.index.tz_convert(MARKET_TZ).normalize()
        for _, part in frame.groupby(local_day):
            if part["regular"].sum() >= 200:
                source.append(part)
    parts = []
    for k, day in enumerate(target):
        part = source[(k + offset) % len(source)]
        local = part.index.tz_convert(MARKET_TZ)
        shift = pd.Timestamp(day.date()).tz_localize(MARKET_TZ) - local.normalize()
        new_index = (local + shift).tz_convert("UTC")
        cut = part[["open", "high", "low", "close", "volume"]].copy()
        cut.index = new_index
        parts.append(cut)
    tiled = pd.concat(parts)
    prices = ["open", "high", "low", "close"]
    tiled[prices] = np.round(tiled[prices].to_numpy() * scale, 2)
    bars = [
        BarData("X", ts, o, h, lo, c, v)
        for ts, o, h, lo, c, v in zip(
            tiled.index.to_pydatetime(),
            *(tiled[c].to_numpy().tolist() for c in ("open", "high", "low", "close", "volume")),
            strict=True,
        )  # fmt: skip
    ]
    return bars_frame_from_data(bars)


def _synthetic_year(*, seed: int, scale: float):
    from analytics.bars import bars_frame_from_data
    from marketdata.replay import synthetic_sessions

    bars = synthetic_sessions(
        symbol="X", sessions=252, seed=seed, end=date(2023, 12, 29), start_price=450 * scale
    )
    return bars_frame_from_data(bars)


def build_frames():
    from analytics.bars import bars_frame_from_csv

    files = sorted(SHARED.glob("SPY_1m_2011-*.csv"))
    frames = {}
    if files:
        src = [bars_frame_from_csv(f) for f in files]
        for k, (symbol, scale) in enumerate(SYMBOLS):
            frames[symbol] = _tiled_year(src, offset=11 * k, scale=scale)
        origin = "shared SPY sessions tiled"
    else:
        for k, (symbol, scale) in enumerate(SYMBOLS):
            frames[symbol] = _synthetic_year(seed=100 + k, scale=scale)
        origin = "seeded synthetic year"
    return frames, origin


def backtesting_py_ratio(frames, config) -> dict | None:
    """Time backtesting.py (when installed) on an EMA20/EMA50 cross over the same bars, against
    our fast mode restricted to EMA_CROSS on the same bars. None when it is not installed."""
    try:
        from backtesting import Backtest, Strategy
    except ImportError:
        return None
    import warnings
    from dataclasses import replace

    import pandas as pd

    from analytics.backtest.fast import run_fast

    def ema(values, n):
        return pd.Series(values).ewm(span=n, adjust=False).mean().to_numpy()

    class EmaCross(Strategy):
        def init(self):
            self.fast = self.I(ema, self.data.Close, 20)
            self.slow = self.I(ema, self.data.Close, 50)

        def next(self):
            if self.fast[-2] <= self.slow[-2] and self.fast[-1] > self.slow[-1]:
                self.buy()
            elif self.position and self.fast[-1] < self.slow[-1]:
                self.position.close()

    bars = 0
    started = time.perf_counter()
    for frame in frames.values():
        data = frame[frame["regular"]][["open", "high", "low", "close", "volume"]]
        data = data.rename(columns=str.capitalize).tz_convert(None)
        bars += len(data)
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")  # and no progress bar of theirs in our output
            Backtest(data, EmaCross, cash=10_000_000, commission=0.0001).run()
    theirs = time.perf_counter() - started
    ema_only = replace(config, strategy=replace(config.strategy, enabled_setups=("EMA_CROSS",)))
    symbols = list(frames)
    run_fast(frames, ema_only, symbols=symbols)
    started = time.perf_counter()
    run_fast(frames, ema_only, symbols=symbols)
    ours = time.perf_counter() - started
    all_bars = sum(len(f) for f in frames.values())
    return {
        "name": "backtest_vs_backtesting_py",
        "strategy": "EMA20/EMA50 cross",
        "backtesting_py_bars": bars,
        "backtesting_py_bars_per_s": round(bars / theirs),
        "ours_bars": all_bars,
        "ours_bars_per_s": round(all_bars / ours),
        "ratio": round((all_bars / ours) / (bars / theirs), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--event-symbols", type=int, default=1)
    args = parser.parse_args()
    import django

    django.setup()
    from analytics.backtest.config import BacktestConfig
    from analytics.backtest.event import run_event
    from analytics.backtest.fast import run_fast

    frames, origin = build_frames()
    config = BacktestConfig.from_settings()
    symbols = [s for s, _ in SYMBOLS]
    bars = sum(len(f) for f in frames.values())
    print(f"# {origin}: {bars:,} bars, {len(symbols)} symbols", file=sys.stderr)

    event_symbols = symbols[: max(1, args.event_symbols)]
    event_frames = {s: frames[s] for s in event_symbols}
    started, cpu = time.perf_counter(), time.process_time()
    event = run_event(event_frames, config, symbols=event_symbols)
    event_sec = time.perf_counter() - started
    event_cpu = time.process_time() - cpu
    event_bars = sum(len(f) for f in event_frames.values())
    print(
        json.dumps(
            {
                "name": "backtest",
                "mode": "event",
                "bars": event_bars,
                "symbols": len(event_symbols),
                "seconds": round(event_sec, 3),
                "bars_per_s": round(event_bars / event_sec),
                "cpu_bars_per_s": round(event_bars / event_cpu),
                "trades": len(event.closed_trades()),
            }
        ),
        flush=True,
    )
    comparison = backtesting_py_ratio(frames, config)
    if comparison is not None:
        print(json.dumps(comparison), flush=True)
    run_fast(frames, config, symbols=symbols)  # warm-up (imports, JIT, calendar caches)
    runs = []
    for _ in range(3):  # best of three: the machine is shared
        started, cpu = time.perf_counter(), time.process_time()
        fast = run_fast(frames, config, symbols=symbols)
        runs.append((time.perf_counter() - started, time.process_time() - cpu))
    fast_sec, fast_cpu = min(runs)
    print(
        json.dumps(
            {
                "name": "backtest",
                "bars": bars,
                "bars_per_s": round(bars / fast_sec),
                "mode": "fast",
                "seconds": round(fast_sec, 3),
                "cpu_bars_per_s": round(bars / fast_cpu),
                "engine": fast.params.get("engine"),
                "symbols": len(symbols),
                "sessions": len(fast.sessions),
                "trades": len(fast.closed_trades()),
                "signals": len(fast.signals),
                "data": origin,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
