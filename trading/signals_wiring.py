"""Connections made at start-up: bar-close events → the pipeline tasks (one per bar, or one
per shard for bars closed together), the exposure provider
for `risk`, beat schedules after migrate, and the worker start-up reconciliation."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def bar_closed_receiver(sender, bar, **kwargs) -> None:
    from trading.tasks import on_bar_closed

    on_bar_closed.delay(bar.as_event())


def bars_closed_receiver(sender, bars, **kwargs) -> None:
    """One task per shard for bars closed together (a universe's minute)."""
    from django.conf import settings

    from trading.bar_routing import bar_batches
    from trading.tasks import on_bars_closed

    for batch in bar_batches([bar.as_event() for bar in bars], settings.BAR_CLOSE_SHARDS):
        try:  # one shard's failed publish must not keep the other shards' bars from going out
            on_bars_closed.delay(batch)
        except Exception:
            log.exception("could not enqueue the bar-close batch of %d bars", len(batch))


def clock_ticked_receiver(sender, now, **kwargs) -> None:
    from trading.tasks import clock_tick

    clock_tick.delay(now.isoformat())


def exposure_now():
    from autotrader_site.clock import clock
    from trading.brokers import broker_get
    from trading.selectors import exposure_snapshot

    try:
        balances = broker_get().balances()
    except Exception:
        log.exception("balances unavailable for the exposure snapshot")
        balances = None
    return exposure_snapshot(
        now=clock.now(),
        cash=balances.cash if balances else None,
        buying_power=balances.buying_power if balances else None,
    )


def schedules_after_migrate(sender, **kwargs) -> None:
    from trading.schedules import schedules_default_ensure

    try:
        schedules_default_ensure()
    except Exception:  # a missing beat table must never break migrate
        log.exception("could not create the periodic task schedules")


def celery_hooks_connect() -> None:
    from celery.signals import worker_ready

    worker_ready.connect(_on_worker_ready, dispatch_uid="trading.worker_ready", weak=False)


def _on_worker_ready(sender=None, **kwargs) -> None:
    """Fail closed: HALT until the start-up reconciliation succeeds; then say we are alive."""
    from datetime import UTC, datetime

    from trading.reconciliation import startup_reconcile
    from trading.services import heartbeat_record
    from trading.tasks import worker_name

    result = startup_reconcile()
    heartbeat_record(
        name=worker_name(),
        now=datetime.now(UTC),  # liveness is wall-clock time (a replay's clock may lag)
        info={"event": "worker_ready", "reconciled": result["ok"]},
    )
