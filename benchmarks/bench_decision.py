#!/usr/bin/env python
"""Decision latency of the live path: bar close -> order intent, through the one bar step.

Replays 1-minute sessions for 4 symbols interleaved minute by minute in one process, each bar
through `trading.core.step.bar_step` (the step the live pipeline and the backtests run) over
the in-memory ledger: paper fills of working orders, FeatureEngine.update and the 7 setups with
cooldown (the strategy driver), the session policy checks (when --policy is given), the
execution-map translation, exits, marks and the kill switch, the exposure, the risk decision
(risk.rules.evaluate) and, when approved, the trade and its entry order in the ledger.

Measured: the in-memory step. Database writes and the options-gate cache lookup are NOT in the
measured section (the ORM ledger's queries are counted by the per-bar query budget work).
Only regular-session bars are timed (pre/post-market bars are ignored by the engine in ~1 us
and would flatter the percentiles).

Wall-clock percentiles (p50_ms, p99_ms) are the goal's figures; on a shared, overloaded machine
they include time the process was descheduled, so the thread CPU-time percentiles (cpu_*_ms) and
the 1-minute load average are printed too.

Data: the shared SPY/ES files when present (SPY Jan 2011, SPY Mar 2011, ES Jan-Apr 2020 and SPY Jan
2011 scaled as a fourth symbol), else synthetic random-walk sessions. Goal: p99 <= 1 ms.

    .venv/bin/python benchmarks/bench_decision.py [--sessions N] [--policy FILE]

Last line: {"name": "decision_latency", "bars": ..., "p50_ms": ..., "p99_ms": ...}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analytics.backtest.config import BacktestConfig  # noqa: E402
from analytics.backtest.event import _prices, memory_ledger_for, step_context  # noqa: E402
from analytics.backtest.strategy_driver import StrategyDriver  # noqa: E402
from marketdata.types import BarData  # noqa: E402
from risk.config import RiskConfig, symbol_params  # noqa: E402
from strategies.config import StrategyConfig  # noqa: E402
from strategies.features.sessions import ET  # noqa: E402
from strategies.policies import policies_load  # noqa: E402
from trading.core.fills import FillCosts  # noqa: E402
from trading.core.step import bar_step  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _from_csv(path: Path, symbol: str, scale: float = 1.0) -> list[BarData]:
    df = pd.read_csv(path)
    ts = pd.to_datetime(df["ts"], utc=True)
    return [
        BarData(symbol, t.to_pydatetime(), o * scale, h * scale, lo * scale, c * scale, float(v))
        for t, o, h, lo, c, v in zip(
            ts, df["open"], df["high"], df["low"], df["close"], df["volume"], strict=True
        )
    ]


def _synthetic(symbol: str, sessions: int, seed: int, price: float) -> list[BarData]:
    rng = np.random.default_rng(seed)
    out = []
    day = datetime(2024, 1, 2).date()
    done = 0
    while done < sessions:
        if day.weekday() < 5:
            start = datetime.combine(day, datetime.min.time().replace(hour=9, minute=30), ET)
            for i in range(390):
                o = price
                price = max(1.0, price * (1 + rng.normal(0, 0.0008)))
                hi = max(o, price) * (1 + abs(rng.normal(0, 0.0003)))
                lo = min(o, price) * (1 - abs(rng.normal(0, 0.0003)))
                vol = float(rng.integers(1_000, 50_000))
                ts = (start + timedelta(minutes=i)).astimezone(UTC)
                out.append(BarData(symbol, ts, o, hi, lo, price, vol))
            done += 1
        day += timedelta(days=1)
    return out


def load(sessions: int | None) -> tuple[dict[str, list[BarData]], str]:
    files = [
        SHARED / n for n in ("SPY_1m_2011-01.csv", "SPY_1m_2011-03.csv", "ES_1m_2020-01_04.csv")
    ]
    if all(f.exists() for f in files):
        data = {
            "SPY": _from_csv(files[0], "SPY"),
            "QQQ": _from_csv(files[1], "QQQ"),
            "ES": _from_csv(files[2], "ES"),
            "IWM": _from_csv(files[0], "IWM", scale=0.62),
        }
        source = "shared SPY/ES files"
    else:
        n = sessions or 20
        data = {
            s: _synthetic(s, n, seed, p)
            for seed, (s, p) in enumerate(
                {"SPY": 450.0, "QQQ": 380.0, "IWM": 200.0, "DIA": 350.0}.items()
            )
        }
        source = f"synthetic {n} sessions"
    if sessions:
        for symbol, bars in data.items():
            days = sorted({b.ts.astimezone(ET).date() for b in bars})[:sessions]
            keep = set(days)
            data[symbol] = [b for b in bars if b.ts.astimezone(ET).date() in keep]
    return data, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=None, help="first N sessions per symbol")
    parser.add_argument("--policy", default="", help="session policy YAML to enforce")
    args = parser.parse_args()

    data, source = load(args.sessions)
    cfg = StrategyConfig.from_settings()
    risk_cfg = RiskConfig.from_settings()
    book = policies_load(args.policy) if args.policy else None
    config = BacktestConfig(
        strategy=cfg,
        risk=risk_cfg,
        costs=FillCosts(),
        starting_cash=Decimal("100000"),
        policy_book=book,
    )
    exec_symbols = sorted({cfg.execution_symbol(s) for s in data} | set(data))
    params = {s: symbol_params(s, risk_cfg) for s in exec_symbols}
    ledger = memory_ledger_for(config, params)
    drivers = {s: StrategyDriver(s, cfg) for s in data}
    ctx = step_context(config, params, lambda symbol: False)
    streams = list(data.items())
    longest = max(len(b) for b in data.values())

    latencies: list[int] = []
    cpu_times: list[int] = []
    fired_bar: list[bool] = []
    perf = time.perf_counter_ns
    cpu = time.thread_time_ns
    for i in range(longest):
        for symbol, bars in streams:
            if i >= len(bars):
                continue
            bar = bars[i]
            driver = drivers[symbol]
            fired: list = []

            def strategy(bar=bar, driver=driver, fired=fired):
                found = driver.on_bar(
                    pd.Timestamp(bar.ts), bar.open, bar.high, bar.low, bar.close, bar.volume
                )
                fired.extend(found)
                return ledger.candidates(found) if found else []

            c0 = cpu()
            t0 = perf()
            bar_step(
                ledger,
                symbol=symbol,
                ts=bar.ts,
                bar=lambda bar=bar: _prices(bar.open, bar.high, bar.low, bar.close, bar.volume),
                strategy=strategy,
                ctx=ctx,
            )
            elapsed, cpu_elapsed = perf() - t0, cpu() - c0
            if driver.row is None:
                continue  # outside the regular session: the engine ignored the bar
            latencies.append(elapsed)
            cpu_times.append(cpu_elapsed)
            fired_bar.append(bool(fired))

    arr = np.array(latencies, dtype=float) / 1e6
    mask = np.array(fired_bar, dtype=bool)
    cpu_arr = np.array(cpu_times, dtype=float) / 1e6
    outcomes = [s.outcome for s in ledger.signals]
    result = {
        "name": "decision_latency",
        "bars": int(arr.size),
        "symbols": len(data),
        "setups": len(cfg.enabled_setups),
        "signals": len(outcomes),
        "approved": sum(o == "dry_run" for o in outcomes),
        "orders": sum(len(t.orders) for t in ledger.trades),
        "trades": len(ledger.trades),
        "p50_ms": round(float(np.percentile(arr, 50)), 4),
        "p99_ms": round(float(np.percentile(arr, 99)), 4),
        "max_ms": round(float(arr.max()), 4),
        "mean_ms": round(float(arr.mean()), 4),
        "p99_quiet_bar_ms": round(float(np.percentile(arr[~mask], 99)), 4),
        "p99_signal_bar_ms": round(float(np.percentile(arr[mask], 99)), 4) if mask.any() else None,
        "cpu_p50_ms": round(float(np.percentile(cpu_arr, 50)), 4),
        "cpu_p99_ms": round(float(np.percentile(cpu_arr, 99)), 4),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "goal_p99_ms": 1.0,
        "data": source,
        "scope": "trading.core.step.bar_step over the in-memory ledger: fills, features, "
        "setups, policy, execution map, exits, kill switch, exposure, risk rules, entry; "
        "no DB writes, options cache excluded",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
