"""Loaded into the Celery workers of benchmarks/bench_universe.py (`--include`): records when each
bar-close task finished, so the benchmark sees every symbol's decision without knowing how the
pipeline is built. One Redis list entry per task: [symbol, bar ts, wall time done, state].

UNIVERSE_PROBE_REDIS names the Redis; UNIVERSE_PROBE_TASK the task (default trading.on_bar_closed).
"""

from __future__ import annotations

import json
import os
import time

import redis
from celery.signals import task_postrun

PROBE_KEY = "universe:done"
_client: redis.Redis | None = None


@task_postrun.connect(weak=False)
def _bar_task_done(sender=None, task=None, args=None, kwargs=None, state=None, **extra) -> None:
    global _client
    if task is None or task.name != os.environ.get("UNIVERSE_PROBE_TASK", "trading.on_bar_closed"):
        return
    done = time.time()
    event = (args or [None])[0] or (kwargs or {}).get("bar_event") or {}
    if _client is None:
        _client = redis.Redis.from_url(os.environ["UNIVERSE_PROBE_REDIS"])
    _client.rpush(PROBE_KEY, json.dumps([event.get("symbol"), event.get("ts"), done, state]))
