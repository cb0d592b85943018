"""Loaded into the Celery worker of the SIGTERM tests (`-I tests.faults.lifecycle_tasks`)."""

from __future__ import annotations

import time
from pathlib import Path

from celery import shared_task


@shared_task(name="faults.sleep", acks_late=True)
def sleep_task(marker: str, seconds: float) -> str:
    """Note each start in `marker`, then sleep: a task still running when SIGTERM comes."""
    with Path(marker).open("a") as fh:
        fh.write(f"{time.time()}\n")
    time.sleep(seconds)
    return "slept"
