"""The one way any stage tells the live dashboard that the account changed: `live_event_publish`
(and `group_send`, the sync send every stage uses for the channel layer, bars included).

It lives above the apps (like the clock and the metrics) so every stage may call it without
importing `analytics`. A call inside a transaction sends nothing until the transaction commits
(a rolled-back change never reaches a page), and all calls of one transaction become ONE
channel-layer message, so a bar that writes ten rows costs one send. The message goes to the
group `live.account` with type `live.event`; `analytics.live.LiveConsumer` answers it by pushing
a fresh panel snapshot to every open page.

Message: {"type": "live.event", "kinds": ["fill", "order", ...], "sent_at": <unix seconds>}.

Sending from plain sync code (a Celery worker, a management command) goes through one event loop
kept in a daemon thread per process: channels_redis keeps its Redis connections per event loop,
and `async_to_sync` outside a server makes a new loop (and thread, and connection) per call —
measured 7.5 ms of CPU per send against 1.3 ms through the kept loop (load 8.5). Inside an ASGI
server's sync thread, and for the in-memory layer, the send stays on `async_to_sync` (the
server's own loop; the in-memory layer's queues belong to it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import DEFAULT_DB_ALIAS, transaction

log = logging.getLogger(__name__)

ACCOUNT_GROUP = "live.account"
EVENT_TYPE = "live.event"
KINDS = frozenset(
    {"order", "fill", "position", "trade", "trading_state", "account", "signal", "bars"}
)
_PENDING_ATTR = "_live_events_pending"
SEND_TIMEOUT_SEC = 5.0  # a hung Redis never holds a bar task longer than this


def live_event_publish(*, kind: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Tell open dashboards that `kind` changed (one of KINDS), once the change is committed.

    Never raises for a channel-layer outage: a dashboard must never stop trading.
    Raises ValueError for an unknown kind (a programming error, caught by the tests)."""
    if kind not in KINDS:
        raise ValueError(f"unknown live event kind {kind!r}; one of {sorted(KINDS)}")
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        _send({kind})
        return
    flushes = [sids for sids, func, _ in connection.run_on_commit if func is _flusher(using)]
    if not flushes:  # kinds left by a rolled-back transaction are not news
        setattr(connection, _PENDING_ATTR, set())
    getattr(connection, _PENDING_ATTR).add(kind)
    # A flush that runs whenever this change is kept: its savepoints are a subset of the current
    # ones, so a rollback that drops the flush drops the change too. Otherwise register another
    # (the first to run at commit sends everything pending).
    current = set(connection.savepoint_ids)
    if not any(sids <= current for sids in flushes):
        transaction.on_commit(_flusher(using), using=using, robust=True)


@functools.cache
def _flusher(using: str):
    return functools.partial(_flush, using)


def _flush(using: str) -> None:
    connection = transaction.get_connection(using)
    pending = getattr(connection, _PENDING_ATTR, None)
    if not pending:
        return  # an earlier flush of the same commit sent everything
    setattr(connection, _PENDING_ATTR, set())
    _send(pending)


def _send(kinds: set[str]) -> None:
    message = {"type": EVENT_TYPE, "kinds": sorted(kinds), "sent_at": time.time()}
    try:
        group_send(ACCOUNT_GROUP, message)
    except Exception:  # Redis down: the pages mark themselves stale; trading goes on
        log.warning("live event %s not published (channel layer unreachable)", sorted(kinds))


def group_send(group: str, message: dict) -> None:
    """Send `message` to a channel-layer group from sync code, through this process's kept
    loop (see the module docstring); no layer configured: nothing. Raises what the layer
    raises (callers decide what an outage means to them), TimeoutError after
    SEND_TIMEOUT_SEC."""
    layer = get_channel_layer()
    if layer is None:
        return
    loop = None if _server_thread() or isinstance(layer, InMemoryChannelLayer) else _loop()
    if loop is None:
        async_to_sync(layer.group_send)(group, message)
        return
    sent = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
    try:
        sent.result(timeout=SEND_TIMEOUT_SEC)
    except TimeoutError:
        sent.cancel()
        raise


def _server_thread() -> bool:
    """True in a sync thread an ASGI server's loop started (sync_to_async): async_to_sync
    runs the send on that loop. asgiref never clears its thread-local, so a thread that once
    ran sync code for a loop since stopped (a test's communicator) still names it: only a
    running loop counts."""
    local = SyncToAsync.threadlocal
    loop = getattr(local, "main_event_loop", None)
    return (
        getattr(local, "main_event_loop_pid", None) == os.getpid()
        and loop is not None
        and loop.is_running()
    )


_kept: tuple[int, asyncio.AbstractEventLoop] | None = None
_kept_lock = threading.Lock()


def _loop() -> asyncio.AbstractEventLoop:
    """This process's sending loop, started on first use (again after a fork: a forked child
    has the parent's loop object but not its thread)."""
    global _kept
    with _kept_lock:
        if _kept is None or _kept[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="live-events", daemon=True).start()
            _kept = (os.getpid(), loop)
        return _kept[1]
