"""Loaded into the Celery worker of the Redis-restart test (`-I tests.faults.redis_restart_tasks`):
a short task with no database, so what is measured is the worker's broker and result
connections across the restart, nothing else."""

from __future__ import annotations

import time

from celery import shared_task


@shared_task(name="faults.redis_restart.step", acks_late=True)
def step(n: int) -> int:
    time.sleep(0.25)  # long enough for some tasks to be running when Redis goes down
    return n * n
