"""Loaded into the Celery workers of benchmarks/bench_universe.py (`--include`): records when each
bar-close task finished, so the benchmark sees every symbol's decision without knowing how the
pipeline is built. One Redis list entry per bar: [symbol, bar ts, wall time done, state, wall
time its task started]; the bars of a batch task (trading.on_bars_closed) all get the batch's
end, an upper bound of each one's decision and exactly the last one's, and its start (what the
batch waited for before the worker took it, against what handling it took). The same entries
go to `universe:start` when the task is picked up (the pickup latency).

UNIVERSE_PROBE_REDIS names the Redis; UNIVERSE_PROBE_TASK the single-bar task (default
trading.on_bar_closed); UNIVERSE_PROBE_BATCH_TASK the batch task (default trading.on_bars_closed).
"""

from __future__ import annotations

import json
import os
import time

import redis
from celery.signals import task_postrun, task_prerun

PROBE_KEY = "universe:done"
START_KEY = "universe:start"  # the same entries when the task is picked up
_client: redis.Redis | None = None
_started: dict[str, float] = {}  # task id -> wall time it started


def _events(task, args, kwargs) -> list[dict] | None:
    """The bar events of a bar-close task (single or batch), None for any other task."""
    first = (args or [None])[0]
    if task.name == os.environ.get("UNIVERSE_PROBE_TASK", "trading.on_bar_closed"):
        return [first or (kwargs or {}).get("bar_event") or {}]
    if task.name == os.environ.get("UNIVERSE_PROBE_BATCH_TASK", "trading.on_bars_closed"):
        return list(first or (kwargs or {}).get("bar_events") or [])
    return None


def _record(key: str, events: list[dict], state, at: float, started: float | None) -> None:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["UNIVERSE_PROBE_REDIS"])
    if events:
        rows = (json.dumps([e.get("symbol"), e.get("ts"), at, state, started]) for e in events)
        _client.rpush(key, *rows)


@task_prerun.connect(weak=False)
def _bar_task_start(sender=None, task_id=None, task=None, args=None, kwargs=None, **extra) -> None:
    events = None if task is None else _events(task, args, kwargs)
    if events is not None:
        _started[task_id] = at = time.time()
        _record(START_KEY, events, "started", at, at)


@task_postrun.connect(weak=False)
def _bar_task_done(
    sender=None, task_id=None, task=None, args=None, kwargs=None, state=None, **extra
) -> None:
    started = _started.pop(task_id, None)
    events = None if task is None else _events(task, args, kwargs)
    if events is not None:
        _record(PROBE_KEY, events, state, time.time(), started)
