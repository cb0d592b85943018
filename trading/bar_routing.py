"""Which Celery queue a closed bar's task goes to.

With `BAR_CLOSE_SHARDS` = N > 1, every bar of a symbol goes to the queue `bars.<k>` with
k = crc32(symbol) mod N, and each worker consumes its own shard (`-Q celery,bars.<k>`): the
workers share a universe's minute between them, a symbol's bars are handled in order by one
process, and that process's feature engine for the symbol stays warm (no catch-up read or
rebuild because another worker handled the previous minute). N = 1 (the default) leaves every
task on Celery's default queue, which all workers share.
"""

from __future__ import annotations

import zlib

from django.conf import settings

BAR_CLOSE_TASK = "trading.on_bar_closed"
BARS_CLOSE_TASK = "trading.on_bars_closed"  # a list of bar events, all of one shard
BAR_QUEUE_PREFIX = "bars."


def bar_queue(symbol: str, shards: int) -> str | None:
    """The shard queue of `symbol`'s bars; None when bars are not sharded (shards <= 1)."""
    if shards <= 1:
        return None
    return f"{BAR_QUEUE_PREFIX}{zlib.crc32(symbol.upper().encode()) % shards}"


def bar_queues(shards: int) -> list[str]:
    """Every shard queue (what workers must consume between them)."""
    return [f"{BAR_QUEUE_PREFIX}{k}" for k in range(shards)] if shards > 1 else []


def bar_batches(events: list[dict], shards: int) -> list[list[dict]]:
    """Bar events split by shard (one list per queue, first-seen order), each list in the
    order given, so a symbol's minutes stay in order inside its batch."""
    batches: dict[str | None, list[dict]] = {}
    for event in events:
        batches.setdefault(bar_queue(event["symbol"], shards), []).append(event)
    return list(batches.values())


def route_task(name, args, kwargs, options, task=None, **kw):
    """Celery router (CELERY_TASK_ROUTES): bar-close tasks by symbol, everything else default.
    Retries and resumed bars route the same way, since the symbol is in the task's argument.
    A batch goes by its first bar's symbol (`bar_batches` keeps one shard per batch)."""
    if name == BARS_CLOSE_TASK:
        batch = (args[0] if args else None) or (kwargs or {}).get("bar_events") or []
        event = batch[0] if isinstance(batch, list | tuple) and batch else {}
    elif name == BAR_CLOSE_TASK:
        event = (args[0] if args else None) or (kwargs or {}).get("bar_event") or {}
    else:
        return None
    symbol = event.get("symbol") if isinstance(event, dict) else None
    queue = bar_queue(symbol, settings.BAR_CLOSE_SHARDS) if symbol else None
    return {"queue": queue} if queue else None
