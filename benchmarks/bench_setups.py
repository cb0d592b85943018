#!/usr/bin/env python
"""Per-bar cost of the setups on the live path: FeatureEngine.update (base features, the library
features the setups name, every setup's per-bar evaluator) + setups_decide (decisions, cooldown),
one symbol, regular-session bars of the shared SPY months (else synthetic sessions).

Three configurations, each on a fresh engine over the same bars:
- "base": no setups (the feature engine alone), for reference;
- "builtin": the seven built-in definitions;
- "builtin+50": the seven plus 50 generated user definitions (SETUPS_DIR in a temp folder) that
  use the feature library (RSI, MACD, Bollinger, stochastic, ADX, 5/15-minute averages, prior-day
  and pre-market levels, N-bar extremes) and the history functions.
Wall-clock and thread-CPU percentiles per bar; the 1-minute load average is printed alongside.
Goal (bench_decision.py's): p99 <= 1 ms for the decision with the seven setups.

    .venv/bin/python benchmarks/bench_setups.py [--repeat N]

Last line: {"name": "setup_decision", "builtin_p99_ms": ..., "builtin_cpu_p99_ms": ...,
"builtin50_p99_ms": ..., "builtin50_cpu_p99_ms": ..., "load_1m": ..., "load_1m_end": ...}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from django.conf import settings  # noqa: E402

from strategies.config import StrategyConfig  # noqa: E402
from strategies.evaluation import setups_decide  # noqa: E402
from strategies.feature_store import new_engine  # noqa: E402
from strategies.setups.registry import enabled_names, setups_changed  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
TEMPLATES = [
    "crosses_above(close, ema_{a}) and rsi_{b} > 50",
    "rsi_{b} < {lvl} and close > prior_day_low and rvol >= 0.{k}",
    "crosses_above(macd, macd_signal) and adx_14 > {lvl2}",
    "close > bb_upper_{a} and rvol >= 1.{k}",
    "stoch_k_{b} < 25 and crosses_above(stoch_k_{b}, stoch_d_{b})",
    "first_since(close < vwap, new_low) and bars_since(new_low) <= {k}",
    "rising(ema5m_{a}, 3) and close >= highest_{a}",
    'time_between("10:00", "15:00") and opening_gap > 0 and close > premarket_high',
    "becomes(close > sma15m_{k}) and vwap_slope > 0",
    "falling(rsi_{b}, 3) and close < lowest_{a} + atr_{b}",
]


def bars_frame() -> pd.DataFrame:
    files = [SHARED / "SPY_1m_2011-01.csv", SHARED / "SPY_1m_2011-03.csv"]
    if all(f.exists() for f in files):
        df = pd.concat([pd.read_csv(f) for f in files])
        df.index = pd.to_datetime(df.pop("ts"), utc=True)
        return df
    from analytics.bars import bars_frame_from_data
    from marketdata.replay import synthetic_sessions

    frame = bars_frame_from_data(synthetic_sessions(symbol="SPY", sessions=40, seed=3))
    return frame[["open", "high", "low", "close", "volume"]]


def user_definitions(folder: Path, n: int = 50) -> None:
    for i in range(n):
        text = TEMPLATES[i % len(TEMPLATES)].format(
            a=8 + i, b=5 + i % 17, lvl=25 + i % 10, lvl2=15 + i % 15, k=1 + i % 9
        )
        (folder / f"user_{i:02d}.yaml").write_text(f"name: USER_{i:02d}\ncondition: '{text}'\n")


def measure(df: pd.DataFrame, cfg: StrategyConfig, repeat: int) -> dict:
    rows = list(zip(df.index.to_pydatetime(), df["open"], df["high"], df["low"], df["close"],
                    df["volume"], strict=True))  # fmt: skip
    wall, cpu = [], []
    fired = 0
    for _ in range(repeat):
        engine = new_engine("SPY", cfg)
        last: dict = {}
        for ts, o, h, lo, c, v in rows:
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            row = engine.update(ts, float(o), float(h), float(lo), float(c), float(v))
            if row is not None and cfg.enabled_setups:
                for d in setups_decide(row, symbol="SPY", cfg=cfg, last_fired=last):
                    if d.fired:
                        last[d.setup] = ts
                        fired += 1
            t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
            if row is not None:
                wall.append(t1 - t0)
                cpu.append(c1 - c0)
    w, c = np.array(wall) / 1e6, np.array(cpu) / 1e6
    return {
        "setups": len(cfg.enabled_setups),
        "bars": len(wall),
        "fired": fired,
        "p50_ms": round(float(np.percentile(w, 50)), 4),
        "p99_ms": round(float(np.percentile(w, 99)), 4),
        "cpu_p50_ms": round(float(np.percentile(c, 50)), 4),
        "cpu_p99_ms": round(float(np.percentile(c, 99)), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    df = bars_frame()
    base = StrategyConfig()
    out = {"name": "setup_decision", "load_1m": round(os.getloadavg()[0], 2)}
    results = {"base": measure(df, StrategyConfig(enabled_setups=()), args.repeat)}
    results["builtin"] = measure(df, base, args.repeat)
    with tempfile.TemporaryDirectory() as folder:
        user_definitions(Path(folder))
        settings.SETUPS_DIR = folder
        setups_changed()
        names = enabled_names()
        assert len(names) == 57, names
        results["builtin+50"] = measure(df, StrategyConfig(enabled_setups=names), args.repeat)
        settings.SETUPS_DIR = ""
        setups_changed()
    for label, r in results.items():
        print(json.dumps({"name": f"setup_decision[{label}]", **r}), flush=True)
    out.update(
        builtin_p50_ms=results["builtin"]["p50_ms"],
        builtin_p99_ms=results["builtin"]["p99_ms"],
        builtin50_p50_ms=results["builtin+50"]["p50_ms"],
        builtin50_p99_ms=results["builtin+50"]["p99_ms"],
        builtin_cpu_p50_ms=results["builtin"]["cpu_p50_ms"],
        builtin_cpu_p99_ms=results["builtin"]["cpu_p99_ms"],
        builtin50_cpu_p50_ms=results["builtin+50"]["cpu_p50_ms"],
        builtin50_cpu_p99_ms=results["builtin+50"]["cpu_p99_ms"],
        base_p99_ms=results["base"]["p99_ms"],
        base_cpu_p99_ms=results["base"]["cpu_p99_ms"],
        bars=results["base"].get("bars"),
        goal_p99_ms=1.0,
        load_1m_end=round(os.getloadavg()[0], 2),
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
