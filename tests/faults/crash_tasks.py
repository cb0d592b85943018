"""Loaded into the Celery worker under test (`celery -A autotrader_site worker -I
tests.faults.crash_tasks`): one signal through the real decision and order path. The market
time is passed in, so the risk window is that of the recorded session, not of the wall clock."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.conf import settings

from autotrader_site.celery import app
from trading.tasks import BAR_CLOSE_RETRY

# Sweep for unacknowledged (abandoned) messages every second instead of kombu's ~100 s, so a
# task of a killed worker comes back within the run (after CELERY_VISIBILITY_TIMEOUT_SEC).
app.conf.broker_transport_options = {
    **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}


@shared_task(name="faults.signal_handle", **BAR_CLOSE_RETRY)  # as trading.on_bar_closed
def signal_handle_task(signal_id: int, now_iso: str, bracket: bool) -> str:
    from strategies.models import Signal
    from tests.faults.broker_faults import loose_config
    from trading.pipeline import signal_handle

    signal = Signal.objects.get(pk=signal_id)
    return signal_handle(
        signal=signal, now=datetime.fromisoformat(now_iso), config=loose_config(bracket=bracket)
    )
