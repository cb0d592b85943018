"""Celery tasks of analytics: thin shells around services."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from autotrader_site.clock import clock


@shared_task(name="analytics.session_labels_daily")
def session_labels_daily(days: int = 3) -> dict:
    """Label the last few sessions of every configured symbol (idempotent upsert)."""
    from analytics.services import session_labels_update

    today = clock.now().date()
    result = session_labels_update(start=today - timedelta(days=days), end=today)
    return {
        symbol: {str(d): v["label"] for d, v in labels.items()} for symbol, labels in result.items()
    }


@shared_task(name="analytics.sweep_backtest")
def sweep_backtest(sweep_id: int, overrides: dict, base: dict) -> dict:
    """One combination of a sweep: backtest with the overrides, store it, return its row."""
    from analytics.sweeps import sweep_backtest_one

    return sweep_backtest_one(sweep_id=sweep_id, overrides=overrides, base=base)


@shared_task(name="analytics.sweep_summarize")
def sweep_summarize(rows: list[dict], sweep_id: int) -> dict:
    """The chord's body: rank the combinations and close the sweep."""
    from analytics.sweeps import sweep_summary_store

    return sweep_summary_store(sweep_id=sweep_id, rows=rows)


@shared_task(name="analytics.walkforward_cell")
def walkforward_cell_task(fold: dict, overrides: dict, base: dict) -> dict:
    """One fold x candidate of a walk-forward run: its in/out-of-sample figures."""
    from analytics.walkforward import walkforward_cell

    return walkforward_cell(fold=fold, overrides=overrides, base=base)


@shared_task(name="analytics.walkforward_summarize")
def walkforward_summarize_task(rows: list[dict], run_id: int) -> dict:
    """The chord's body: choose per fold, stitch, score the search, close the run."""
    from analytics.walkforward import walkforward_finish

    return walkforward_finish(run_id=run_id, rows=rows)


@shared_task(name="analytics.runs_reap")
def runs_reap_task() -> list[str]:
    """Sweeps and walk-forwards left `running` past ANALYSIS_RUN_TIMEOUT_MIN become failed."""
    from django.conf import settings
    from django.utils import timezone

    from analytics.services import runs_reap

    return runs_reap(now=timezone.now(), timeout_min=settings.ANALYSIS_RUN_TIMEOUT_MIN)


@shared_task(name="analytics.drift_ledger_daily")
def drift_ledger_daily(days: int = 1) -> dict:
    """Pair the last few sessions' trades with their simulation (idempotent: re-running a day
    replaces its entries); schedule it after the close."""
    from analytics.drift import drift_ledger_update, drift_symbols

    today = clock.now().date()
    start = today - timedelta(days=max(days, 1) - 1)
    symbols = drift_symbols(start=start, end=today)
    if not symbols:
        return {"symbols": [], "all": None}
    summary = drift_ledger_update(symbols=symbols, start=start, end=today, now=clock.now())
    return {"symbols": symbols, "all": summary["all"]}


from analytics.setup_backtest import setup_backtest_task  # noqa: E402,F401 - registers the task
