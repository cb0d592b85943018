"""Walk-forward analysis: choose settings on a training window of sessions, then trade them on
the next, unseen window; repeat window after window and judge only the unseen results.

A run is a list of folds (rolling: a training window of fixed length slides forward by `step`
sessions; anchored: the training window always starts at the first session and grows) and a
list of candidates (every combination of a settings grid, or a seeded random sample of it).
Each fold x candidate is one backtest (the public `analytics.backtest.runner.backtest_run`) over
the fold's training and test sessions in one pass, so the test window starts with warm
features and the split is by session; the cells fan out as Celery tasks with a chord to the
summary (in-process when tasks run eagerly), like `analytics.sweeps`.

The summary, per fold: the in-sample best by the objective, its in-sample and out-of-sample
figures and the rank it earned out of sample; over the run: the stitched out-of-sample equity
curve, the stability of each chosen setting across folds, and the overfitting odds of the whole
search (`analytics.overfitting`: PBO by CSCV and the deflated Sharpe ratio).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import date
from functools import lru_cache

import pandas as pd

log = logging.getLogger(__name__)
OBJECTIVES = ("total_pnl", "expectancy", "sharpe")


class WalkForwardError(ValueError):
    pass


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[date, ...]
    test: tuple[date, ...]

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "train": [d.isoformat() for d in self.train],
            "test": [d.isoformat() for d in self.test],
        }

    @classmethod
    def of(cls, data: dict) -> Fold:
        return cls(
            data["index"],
            tuple(date.fromisoformat(d) for d in data["train"]),
            tuple(date.fromisoformat(d) for d in data["test"]),
        )


def folds_plan(
    sessions: list[date], *, train: int, test: int, step: int | None = None,
    anchored: bool = False,
) -> list[Fold]:  # fmt: skip
    """Folds over `sessions` (sorted trading dates). Rolling: fold k trains on sessions
    [k*step, k*step + train) and tests on the `test` sessions after them; anchored: fold k trains
    on [0, train + k*step). A fold whose test window would run past the data is not made."""
    step = step or test
    if train < 1 or test < 1 or step < 1:
        raise WalkForwardError("train, test and step must be >= 1 session")
    sessions = sorted(sessions)
    folds = []
    k = 0
    while True:
        end_train = train + k * step
        if end_train + test > len(sessions):
            break
        start = 0 if anchored else k * step
        folds.append(
            Fold(k, tuple(sessions[start:end_train]), tuple(sessions[end_train : end_train + test]))
        )
        k += 1
    if not folds:
        raise WalkForwardError(
            f"{len(sessions)} sessions are too few for a {train}-session training window "
            f"and a {test}-session test window"
        )
    return folds


def candidates_make(grid: dict[str, list], *, search: int = 0, seed: int = 0) -> list[dict]:
    """Every combination of `grid`, or `search` of them drawn at random (seeded, no repeats)."""
    from analytics.sweeps import grid_combinations

    combos = grid_combinations(grid)
    if search and search < len(combos):
        picked = sorted(random.Random(seed).sample(range(len(combos)), search))
        combos = [combos[i] for i in picked]
    return combos


# --- data ---------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _csv_frame(paths: tuple[str, ...]) -> pd.DataFrame:
    from analytics.bars import bars_frame_from_csv

    parts = [bars_frame_from_csv(p) for p in paths]
    frame = pd.concat(parts).sort_index()
    return frame[~frame.index.duplicated(keep="first")]


def frames_for(base: dict) -> dict[str, pd.DataFrame]:
    """Bars of the run: `data` is `db` (stored bars, signal and execution symbols) or one or
    more CSV files of one symbol, comma-separated (e.g. two months of SPY)."""
    from pathlib import Path

    symbols = tuple(base.get("symbols") or ("SPY",))
    if base.get("data", "db") == "db":
        from analytics.backtest.config import BacktestConfig
        from analytics.backtest.runner import DataSpec, frames_load

        config = BacktestConfig.from_settings(setups=base.get("setups"))
        return frames_load(DataSpec("db", symbols), config)
    paths = tuple(p.strip() for p in str(base["data"]).split(",") if p.strip())
    for p in paths:
        if not Path(p).is_file():
            raise WalkForwardError(f"--data {p}: no such file")
    if len(symbols) != 1:
        raise WalkForwardError("CSV data holds one symbol; give one --symbol")
    return {symbols[0]: _csv_frame(paths)}


def sessions_for(base: dict) -> list[date]:
    from analytics.bars import sessions_of

    frames = frames_for(base)
    return sessions_of(frames[(base.get("symbols") or ["SPY"])[0]])


def _cut(frames: dict[str, pd.DataFrame], first: date, last: date) -> dict[str, pd.DataFrame]:
    out = {}
    for symbol, frame in frames.items():
        session = frame["session"].to_numpy()
        out[symbol] = frame[(session >= first) & (session <= last)]
    return out


# --- one cell -----------------------------------------------------------------------------
def _part(pnls: list[float], days: list[date], sessions: tuple[date, ...]) -> dict:
    from analytics.overfitting import per_period_sharpe

    daily = {d: 0.0 for d in sessions}
    for pnl, day in zip(pnls, days, strict=True):
        daily[day] = daily.get(day, 0.0) + pnl
    n = len(pnls)
    return {
        "trades": n,
        "total_pnl": round(sum(pnls), 4),
        "expectancy": round(sum(pnls) / n, 4) if n else None,
        "pnl_per_session": round(sum(pnls) / len(sessions), 4) if sessions else None,
        "sharpe": round(per_period_sharpe(list(daily.values())), 6),
        "sessions": len(sessions),
    }


def walkforward_cell(*, fold: dict, overrides: dict, base: dict) -> dict:
    """Backtest one candidate over one fold's training + test sessions; its figures split by
    session into in-sample and out-of-sample, and its P&L per session. A failing cell is
    reported (error), never fatal to the run."""
    from analytics.backtest.runner import DataSpec, backtest_run
    from analytics.sweeps import _spec_and_config

    f = Fold.of(fold)
    first, last = f.train[0], f.test[-1]
    try:
        spec, config = _spec_and_config(overrides, base)
        frames = _cut(frames_for(base), first, last)
        spec = DataSpec(spec.source, spec.symbols, first, last)
        result = backtest_run(spec=spec, config=config, mode=base.get("mode", "fast"),
                              frames=frames)  # fmt: skip
    except (OSError, ValueError) as exc:
        return {"fold": f.index, "overrides": overrides, "error": str(exc)}
    train, test = set(f.train), set(f.test)
    trades = [(t.pnl, t.session_date()) for t in result.closed_trades()]
    is_ = [(p, d) for p, d in trades if d in train]
    oos = [(p, d) for p, d in trades if d in test]
    daily: dict[str, float] = {d.isoformat(): 0.0 for d in (*f.train, *f.test)}
    for pnl, day in trades:
        if day.isoformat() in daily:
            daily[day.isoformat()] += pnl
    return {
        "fold": f.index,
        "overrides": overrides,
        "in_sample": _part([p for p, _ in is_], [d for _, d in is_], f.train),
        "out_of_sample": _part([p for p, _ in oos], [d for _, d in oos], f.test),
        "daily": {k: round(v, 4) for k, v in daily.items()},
    }


# --- the summary --------------------------------------------------------------------------
def _key(overrides: dict) -> str:
    """A candidate's name, independent of key order (PostgreSQL's jsonb reorders keys)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "base"


def _score(part: dict, objective: str) -> float:
    value = part.get(objective)
    return float("-inf") if value is None else float(value)


def _finite(value: float) -> float | None:
    """JSON for the stored report: -inf (no candidate traded) is no score, not a number."""
    return None if value == float("-inf") else value


def walkforward_summarize(*, rows: list[dict], folds: list[dict], candidates: list[dict],
                          objective: str = "total_pnl") -> dict:  # fmt: skip
    """The report of a finished run from its cells (any order)."""
    from analytics.overfitting import search_overfitting

    ok = [r for r in rows if not r.get("error")]
    by_fold: dict[int, list[dict]] = {}
    for row in ok:
        by_fold.setdefault(row["fold"], []).append(row)
    order = {_key(c): i for i, c in enumerate(candidates)}
    report, equity, chosen_keys = [], [], []
    cumulative = 0.0
    for fold in folds:
        cells = sorted(by_fold.get(fold["index"], []), key=lambda r: order[_key(r["overrides"])])
        if not cells:
            report.append({"fold": fold["index"], "error": "no candidate finished"})
            continue
        best = max(cells, key=lambda r: _score(r["in_sample"], objective))  # ties: first
        oos_scores = sorted(_score(r["out_of_sample"], objective) for r in cells)
        mine = _score(best["out_of_sample"], objective)
        below = sum(1 for s in oos_scores if s < mine)
        ties = sum(1 for s in oos_scores if s == mine)
        rank = below + (ties + 1) / 2  # 1 = worst; ties share the average rank
        chosen_keys.append(best["overrides"])
        report.append(
            {
                "fold": fold["index"],
                "train": [fold["train"][0], fold["train"][-1]],
                "test": [fold["test"][0], fold["test"][-1]],
                "chosen": best["overrides"],
                "in_sample": best["in_sample"],
                "out_of_sample": best["out_of_sample"],
                "oos_rank": rank,
                "oos_rank_of": len(cells),
                "best_oos": _finite(max(oos_scores)),
                "scores": [  # every candidate's objective, grid order (None: no trades)
                    {
                        "overrides": r["overrides"],
                        "in_sample": r["in_sample"].get(objective),
                        "out_of_sample": r["out_of_sample"].get(objective),
                    }
                    for r in cells
                ],  # fmt: skip
            }
        )
        for day in fold["test"]:
            pnl = best["daily"].get(day, 0.0)
            cumulative += pnl
            equity.append({"session": day, "pnl": round(pnl, 4), "equity": round(cumulative, 4)})
    daily: dict[str, dict[str, float]] = {}
    for fold in folds:  # every session once: the first fold that covers it
        for row in by_fold.get(fold["index"], []):
            per = daily.setdefault(_key(row["overrides"]), {})
            for day, pnl in row["daily"].items():
                per.setdefault(day, pnl)
    done = [r for r in report if "chosen" in r]
    is_total = sum(r["in_sample"]["pnl_per_session"] or 0.0 for r in done)
    oos_total = sum(r["out_of_sample"]["pnl_per_session"] or 0.0 for r in done)
    return {
        "objective": objective,
        "folds": report,
        "candidates": len(candidates),
        "cells": len(rows),
        "failed": len(rows) - len(ok),
        "errors": sorted({r["error"] for r in rows if r.get("error")})[:5],
        "oos_equity": equity,
        "oos_total_pnl": round(cumulative, 4),
        "efficiency": round(oos_total / is_total, 4) if is_total else None,
        "stability": parameter_stability(chosen_keys),
        "overfitting": search_overfitting(daily),
    }


def parameter_stability(chosen: list[dict]) -> dict:
    """Per setting: the value chosen in each fold, how many distinct values, and the share of
    folds that chose the most common one (1.0 = the same choice every time)."""
    out = {}
    for name in sorted({k for c in chosen for k in c}):
        values = [c.get(name) for c in chosen]
        counts = Counter(str(v) for v in values)
        common, times = counts.most_common(1)[0]
        out[name] = {
            "by_fold": values,
            "distinct": len(counts),
            "most_common": common,
            "share": round(times / len(values), 4),
        }
    return out


# --- starting a run -----------------------------------------------------------------------
@dataclass(frozen=True)
class WalkForwardPlan:
    grid: dict
    base: dict
    train: int
    test: int
    step: int = 0  # 0: the test window's length
    anchored: bool = False
    objective: str = "total_pnl"
    search: int = 0
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def walkforward_start(plan: WalkForwardPlan, *, queue: str | None = None):
    """Create the WalkForwardRun and fan out one task per fold x candidate with a chord to the
    summary. With CELERY_TASK_ALWAYS_EAGER it all runs in-process and the run is finished when
    this returns; `queue` routes every task (a test's private worker)."""
    from celery import chord

    from analytics.services import walkforward_run_create
    from analytics.tasks import walkforward_cell_task, walkforward_summarize_task

    if plan.objective not in OBJECTIVES:
        raise WalkForwardError(f"objective must be one of {', '.join(OBJECTIVES)}")
    folds = [f.as_dict() for f in folds_plan(sessions_for(plan.base), train=plan.train,
                                             test=plan.test, step=plan.step,
                                             anchored=plan.anchored)]  # fmt: skip
    candidates = candidates_make(plan.grid, search=plan.search, seed=plan.seed)
    run = walkforward_run_create(plan=plan.as_dict(), folds=folds, candidates=candidates)
    options = {"queue": queue} if queue else {}
    header = [
        walkforward_cell_task.s(fold, combo, plan.base).set(**options)
        for fold in folds
        for combo in candidates
    ]
    body = walkforward_summarize_task.s(run.pk).set(**options)
    chord(header)(body)
    run.refresh_from_db()
    return run


def walkforward_finish(*, run_id: int, rows: list[dict]) -> dict:
    from analytics.models import WalkForwardRun
    from analytics.services import walkforward_run_finish
    from autotrader_site.clock import clock

    run = WalkForwardRun.objects.get(pk=run_id)
    try:
        summary = walkforward_summarize(
            rows=rows, folds=run.folds, candidates=run.candidates,
            objective=run.plan.get("objective", "total_pnl"),
        )  # fmt: skip
    except Exception as exc:  # a run must never stay "running" for ever
        log.exception("walk-forward #%s: summary failed", run_id)
        walkforward_run_finish(run_id=run_id, summary={"error": f"{type(exc).__name__}: {exc}"},
                               status="failed", finished_at=clock.now())  # fmt: skip
        return {"run_id": run_id, "status": "failed"}
    status = "failed" if rows and summary["failed"] == len(rows) else "done"
    walkforward_run_finish(run_id=run_id, summary=summary, status=status, finished_at=clock.now())
    return {"run_id": run_id, "status": status}
