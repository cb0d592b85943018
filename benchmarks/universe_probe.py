"""Loaded into the Celery workers of benchmarks/bench_universe.py (`--include`): records when each
bar-close task finished, so the benchmark sees every symbol's decision without knowing how the
pipeline is built. One Redis list entry per bar: [symbol, bar ts, wall time done, state, wall
time its task started]; the bars of a batch task (trading.on_bars_closed) all get the batch's
end, an upper bound of each one's decision and exactly the last one's, and its start (what the
batch waited for before the worker took it, against what handling it took).

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
_client: redis.Redis | None = None
_started: dict[str, float] = {}  # task id -> wall time it started


@task_prerun.connect(weak=False)
def _bar_task_started(sender=None, task_id=None, **extra) -> None:
    _started[task_id] = time.time()


@task_postrun.connect(weak=False)
def _bar_task_done(
    sender=None, task_id=None, task=None, args=None, kwargs=None, state=None, **extra
) -> None:
    global _client
    started = _started.pop(task_id, None)
    if task is None:
        return
    first = (args or [None])[0]
    if task.name == os.environ.get("UNIVERSE_PROBE_TASK", "trading.on_bar_closed"):
        events = [first or (kwargs or {}).get("bar_event") or {}]
    elif task.name == os.environ.get("UNIVERSE_PROBE_BATCH_TASK", "trading.on_bars_closed"):
        events = list(first or (kwargs or {}).get("bar_events") or [])
    else:
        return
    done = time.time()
    if _client is None:
        _client = redis.Redis.from_url(os.environ["UNIVERSE_PROBE_REDIS"])
    if events:
        _client.rpush(
            PROBE_KEY,
            *(json.dumps([e.get("symbol"), e.get("ts"), done, state, started]) for e in events),
        )
