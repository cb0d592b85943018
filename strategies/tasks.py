"""Celery shells around the strategy services."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task

from strategies.services import evaluate_bar


@shared_task(name="strategies.evaluate_bar", acks_late=True)
def evaluate_bar_task(symbol: str, bar_ts: str) -> list[int]:
    """Evaluate one stored bar; returns the ids of the signals that fired."""
    return [s.pk for s in evaluate_bar(symbol=symbol, bar_ts=datetime.fromisoformat(bar_ts))]
