"""The Celery worker's bounded stop (imported by every worker through CELERY_IMPORTS).

With REMAP_SIGTERM=SIGQUIT (Procfile, compose) a SIGTERM is Celery's soft shutdown: running
tasks get CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT, then are cancelled — acks_late, so their
messages go back to the queue for another worker — and the worker exits (about 4 s measured,
docs/reliability.md). Should that path hang (a broker that stops answering mid-shutdown), the
watchdog armed here ends the pool's children and the worker SHUTDOWN_DEADLINE_SEC after the
signal; the unacknowledged messages are then redelivered after the visibility timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal

from celery.signals import worker_shutting_down

from autotrader_site.shutdown import GracefulStop


def _kill_children() -> None:
    from billiard.process import active_children

    for child in active_children():
        with contextlib.suppress(OSError):
            os.kill(child.pid, signal.SIGKILL)


class _WorkerStop(GracefulStop):
    def _exit(self, code: int) -> None:  # type: ignore[override]
        _kill_children()
        super()._exit(code)


@worker_shutting_down.connect
def _arm_stop_watchdog(sig=None, how=None, exitcode=None, **kwargs) -> None:
    _WorkerStop("worker").arm()
