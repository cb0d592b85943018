"""Stopping a long-running process within a bound when compose or honcho sends SIGTERM.

Both stop a service with SIGTERM and SIGKILL it a grace period later; whatever is not written
by then is lost. `GracefulStop` turns the first SIGTERM/SIGINT into an event the process's
loops watch (every wait of theirs races it, so connecting, backing off and flushing all end
promptly) and arms a watchdog: if the process is still alive `deadline` seconds after the
signal — a write hanging on a dead database — it logs that and exits hard, so no state ever
outlives the stop. A second signal exits at once.

    stop = GracefulStop("streamer")
    event = stop.install_async()        # inside the running loop; or stop.install() (threads)
    await worker(event)                 # loops end when event is set, pending writes flushed
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_TOO_SLOW = 70  # the watchdog's exit status (EX_SOFTWARE): the stop was not clean


def shutdown_deadline() -> float:
    from django.conf import settings

    return float(getattr(settings, "SHUTDOWN_DEADLINE_SEC", 4.5))


class GracefulStop:
    def __init__(self, name: str, *, deadline: float | None = None) -> None:
        self.name = name
        self.deadline = deadline if deadline is not None else shutdown_deadline()
        self.requested = threading.Event()
        self.signalled_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def install(self) -> threading.Event:
        """Handle the signals with plain handlers (main thread of a synchronous process)."""
        for sig in SIGNALS:
            signal.signal(sig, lambda signum, frame: self.request(signum))
        return self.requested

    def install_async(self) -> asyncio.Event:
        """Handle the signals on the running loop; returns the event to watch."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                self._loop.add_signal_handler(sig, self.request, sig)
        return self._event

    def arm(self) -> None:
        """Start the watchdog without a signal of ours (a process whose framework handles
        SIGTERM itself, e.g. celery beat: called from its stop path)."""
        if not self.requested.is_set():
            self.requested.set()
            self.signalled_at = time.monotonic()
            threading.Thread(target=self._watchdog, name=f"{self.name}-stop", daemon=True).start()

    def request(self, signum: int = signal.SIGTERM) -> None:
        """What a signal does; callable directly (tests, a stop command)."""
        if self.requested.is_set():
            log.error("%s: second %s; exiting now", self.name, signal.Signals(signum).name)
            self._exit(EXIT_TOO_SLOW)
            return
        self.signalled_at = time.monotonic()
        self.requested.set()
        log.warning(
            "%s: %s received; stopping (at most %.1f s)",
            self.name,
            signal.Signals(signum).name,
            self.deadline,
        )
        if self._event is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._event.set)
        threading.Thread(target=self._watchdog, name=f"{self.name}-stop", daemon=True).start()

    def _watchdog(self) -> None:
        time.sleep(self.deadline)
        log.error(
            "%s: not stopped %.1f s after the signal (a write or connection hangs); exiting",
            self.name,
            self.deadline,
        )
        with contextlib.suppress(Exception):  # where it hangs, for the operator
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            if self._loop is not None and self._loop.is_running():
                self._loop.call_soon_threadsafe(self._dump_tasks)
                time.sleep(0.3)
        self._exit(EXIT_TOO_SLOW)

    @staticmethod
    def _dump_tasks() -> None:
        for task in asyncio.all_tasks():
            task.print_stack(limit=8, file=sys.stderr)

    @staticmethod
    def _exit(code: int) -> None:
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
