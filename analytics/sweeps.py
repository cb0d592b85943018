"""Parameter sweeps: a grid of setting overrides, one backtest per combination, fanned out as a
Celery group with a chord to a summary (in-process when tasks run eagerly).

A grid axis is written like the setting it changes: `RISK_STOP_ATR_MULTIPLIER=1.0,1.2,1.5`.
Values are parsed as the setting's current type (int, float, Decimal, bool, time, str), so a
sweep can change any setting the typed configs read (strategy thresholds, risk, exits, costs).
"""

from __future__ import annotations

import itertools
from datetime import time
from decimal import Decimal, InvalidOperation

from django.conf import settings


class GridError(ValueError):
    pass


def _parse_value(name: str, text: str):
    current = getattr(settings, name)
    text = text.strip()
    try:
        if isinstance(current, bool):
            if text.lower() in {"1", "true", "yes", "on"}:
                return True
            if text.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float) or current is None:
            return float(text)
        if isinstance(current, Decimal):
            return str(Decimal(text))  # JSON-safe; turned back into Decimal when applied
        if isinstance(current, time):
            hours, minutes = text.split(":")
            return f"{int(hours):02d}:{int(minutes):02d}"
    except (ValueError, InvalidOperation):
        raise GridError(f"{name}: {text!r} is not a valid {type(current).__name__}") from None
    if isinstance(current, str):
        return text
    raise GridError(f"{name} ({type(current).__name__}) cannot be swept")


def grid_parse(specs: list[str]) -> dict[str, list]:
    """`['NAME=v1,v2', ...]` → {NAME: [v1, v2]}; unknown settings and bad values raise GridError
    naming the axis."""
    grid: dict[str, list] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().upper()
        if not sep or not name or not values.strip():
            raise GridError(f"{spec!r} is not NAME=value1,value2,...")
        if not hasattr(settings, name) or name.startswith("_"):
            raise GridError(f"{name} is not a setting")
        if name in grid:
            raise GridError(f"{name} given twice")
        grid[name] = [_parse_value(name, v) for v in values.split(",") if v.strip()]
        if not grid[name]:
            raise GridError(f"{name} has no values")
    return grid


def grid_combinations(grid: dict[str, list]) -> list[dict]:
    """Every combination, in a stable order (the first axis varies slowest)."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def summary_rank(rows: list[dict], *, key: str = "total_pnl") -> list[dict]:
    """Sweep rows best first by `key` of the overall statistics (missing values last)."""

    def score(row):
        value = (row.get("stats") or {}).get(key)
        return (value is None, -(value or 0.0))

    return sorted(rows, key=score)


def _spec_and_config(overrides: dict, base: dict):
    from datetime import date

    from analytics.backtest.config import BacktestConfig
    from analytics.backtest.runner import DataSpec

    spec = DataSpec(
        base.get("data", "db"),
        tuple(base.get("symbols") or ("SPY",)),
        date.fromisoformat(base["start"]) if base.get("start") else None,
        date.fromisoformat(base["end"]) if base.get("end") else None,
    )
    config = BacktestConfig.from_settings(
        overrides=overrides, setups=base.get("setups"), worst_case=bool(base.get("worst_case"))
    )
    return spec, config


def sweep_backtest_one(*, sweep_id: int, overrides: dict, base: dict) -> dict:
    """Run and store one combination; a failing combination is reported, not fatal."""
    from analytics.backtest.runner import backtest_persist, backtest_run
    from analytics.models import SweepRun

    name = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "base"
    try:
        spec, config = _spec_and_config(overrides, base)
        result = backtest_run(spec=spec, config=config, mode=base.get("mode", "fast"))
    except (OSError, ValueError) as exc:
        return {"overrides": overrides, "error": str(exc), "stats": None, "run_id": None}
    result.params = {**result.params, "overrides": overrides}
    run = backtest_persist(result, name=f"sweep {sweep_id}: {name}"[:128],
                           sweep=SweepRun.objects.get(pk=sweep_id))  # fmt: skip
    stats = result.stats()
    daily = {d.isoformat(): 0.0 for d in result.sessions}
    for trade in result.closed_trades():
        day = trade.session_date().isoformat()
        daily[day] = daily.get(day, 0.0) + trade.pnl
    return {
        "overrides": overrides,
        "run_id": run.pk,
        "stats": stats["ALL"],
        "per_setup": {k: v for k, v in stats.items() if k != "ALL"},
        "daily": {k: round(v, 4) for k, v in daily.items()},  # overfitting odds read it
    }


def sweep_summary_store(*, sweep_id: int, rows: list[dict]) -> dict:
    from analytics.overfitting import search_overfitting
    from analytics.services import sweep_run_finish
    from autotrader_site.clock import clock

    ranked = summary_rank(rows)
    failed = [r for r in rows if r.get("error")]
    daily = {
        ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "base": r["daily"]
        for r in rows
        if r.get("daily")
    }
    summary = {"combinations": len(rows), "failed": len(failed), "ranked_by": "total_pnl",
               "rows": ranked, "overfitting": search_overfitting(daily)}  # fmt: skip
    sweep_run_finish(
        sweep_id=sweep_id,
        summary=summary,
        status="failed" if failed and len(failed) == len(rows) else "done",
        finished_at=clock.now(),
    )
    return summary


def sweep_start(*, grid: dict[str, list], base: dict):
    """Create the SweepRun and fan out: a Celery group of backtests with a chord to the
    summary. With CELERY_TASK_ALWAYS_EAGER (the embedded default) it all runs in-process and
    the sweep is finished when this returns."""
    from celery import chord

    from analytics.services import sweep_run_create
    from analytics.tasks import sweep_backtest, sweep_summarize

    sweep = sweep_run_create(grid=grid, base=base)
    combos = grid_combinations(grid)
    header = [sweep_backtest.s(sweep.pk, combo, base) for combo in combos]
    chord(header)(sweep_summarize.s(sweep.pk))
    sweep.refresh_from_db()
    return sweep
