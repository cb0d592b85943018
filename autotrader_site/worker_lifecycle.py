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

from celery.signals import worker_ready, worker_shutting_down

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


_stop = None


def _arm() -> None:
    global _stop
    if _stop is None:
        _stop = _WorkerStop("worker")
        _stop.arm()


@worker_ready.connect
def _arm_on_the_signal_itself(**kwargs) -> None:
    """Celery runs its soft-shutdown wait inside its SIGTERM handler and only then sends
    worker_shutting_down: wrap the handler so the watchdog starts when the signal arrives."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        celery_handler = signal.getsignal(sig)
        if not callable(celery_handler):
            continue

        def handler(signum, frame, _then=celery_handler):
            _arm()
            _then(signum, frame)

        signal.signal(sig, handler)


@worker_shutting_down.connect
def _arm_stop_watchdog(sig=None, how=None, exitcode=None, **kwargs) -> None:
    _arm()  # a stop that did not come through a signal
