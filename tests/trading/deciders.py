"""What the concurrent-decider tests share: eight signals' setups and the widened race window.

Each decider runs in its own process (multiprocessing), so these are plain module functions.
"""

from __future__ import annotations

import contextlib
import time

from strategies.setups.names import BUILTIN_SETUPS

# the seven built-ins and EMA_CROSS again: eight signals, one setup repeated
EIGHT_SETUPS = [*BUILTIN_SETUPS, "EMA_CROSS"]


def race_window_widen(*, disable_lock: bool, seconds: float = 1.0) -> None:
    """In this decider process: every exposure read sleeps `seconds` after reading, so a
    decision that is not serialised by the decision lock shows as a limit exceeded; with
    `disable_lock` the lock is removed (the control run that must fail)."""
    from trading import pipeline, selectors

    real_snapshot = selectors.exposure_snapshot

    def slow_snapshot(**kwargs):
        exposure = real_snapshot(**kwargs)
        time.sleep(seconds)
        return exposure

    pipeline.exposure_snapshot = slow_snapshot
    if disable_lock:
        pipeline.decision_lock = contextlib.nullcontext
