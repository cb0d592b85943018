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
