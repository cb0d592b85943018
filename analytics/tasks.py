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


from analytics.setup_backtest import setup_backtest_task  # noqa: E402,F401 - registers the task
