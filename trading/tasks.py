"""Celery tasks: thin shells around the pipeline and the services."""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from autotrader_site.clock import clock

log = logging.getLogger(__name__)


# Claim-and-resume of a closed bar: a database connection that dies (kill, restart) fails the
# attempt, which is retried with a short backoff; the retry resumes where the first stopped (the
# bar's stored, still undecided signals: pipeline.signals_undecided) and the idempotency tags keep
# an entry from being sent twice. A killed worker's message comes back (acks_late). A Redis
# restart under a running attempt is retried the same way; the retry's own publish waits for
# Redis to come back (CELERY_TASK_PUBLISH_RETRY_POLICY).
BAR_CLOSE_RETRYABLE = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)
BAR_CLOSE_RETRY = {
    "acks_late": True,
    "autoretry_for": BAR_CLOSE_RETRYABLE,
    "retry_backoff": 1,  # an int: Celery's jitter draws randrange(countdown + 1)
    "retry_backoff_max": 8,
    "retry_jitter": True,
    "max_retries": 12,  # up to ≈ 80 s of outage
}


# ignore_result: nothing reads a bar task's return value; storing it cost a Redis write per
# symbol-minute (500 a minute for a universe)
@shared_task(name="trading.on_bar_closed", ignore_result=True, **BAR_CLOSE_RETRY)
def on_bar_closed(bar_event: dict) -> int:
    """One closed bar through strategies → risk → broker, as a batch of one
    (`trading.bar_batch`: a bar already `done` — a redelivered message — is skipped, not
    stepped again). Returns the signals handled."""
    from marketdata.types import BarData
    from trading.bar_batch import BarStopped, bars_close

    try:
        return bars_close([BarData.from_event(bar_event)], retryable=BAR_CLOSE_RETRYABLE)
    except BarStopped as stopped:  # the outage itself, for autoretry_for
        raise stopped.cause from None


@shared_task(
    bind=True,
    name="trading.on_bars_closed",
    ignore_result=True,
    acks_late=True,
    max_retries=BAR_CLOSE_RETRY["max_retries"],
)
def on_bars_closed(self, bar_events: list[dict]) -> int:
    """Bars closed together (one shard's share of a minute), in order, as one batch
    (`trading.bar_batch`: the quiet bars' reads and claims batched, every other bar as
    `on_bar_closed` handles one, a bar already done skipped). A retryable error at bar k (the
    outage cases of BAR_CLOSE_RETRY, same backoff) retries the task with bars k.. only — the
    bars before k are done and are not stepped again; bar k resumes from its claim. Once the
    retries are spent, bar k is given up (logged) and the rest still run. Any other error of
    one bar is logged and the batch goes on (one bad bar must not cost the rest of the minute,
    as it did not when each bar had its task). Returns the signals handled."""
    from marketdata.types import BarData
    from trading.bar_batch import BarStopped, bars_close

    parsed: list[tuple[int, BarData]] = []  # (index in bar_events, bar)
    for k, event in enumerate(bar_events):
        try:
            parsed.append((k, BarData.from_event(event)))
        except Exception:
            log.exception("bar-close task failed for %r; the batch goes on", _bar_name(event))
    handled, start = 0, 0
    while start < len(parsed):
        try:
            return handled + bars_close(
                [bar for _, bar in parsed[start:]], retryable=BAR_CLOSE_RETRYABLE
            )
        except BarStopped as stopped:
            at = start + stopped.index
            k, exc = parsed[at][0], stopped.cause
            if self.request.retries >= self.max_retries:  # bar k alone is lost, as it was
                log.error("bar-close of %s gave up after retries", _bar_name(bar_events[k]),
                          exc_info=exc)  # fmt: skip
                start = at + 1
                continue
            countdown = get_exponential_backoff_interval(
                factor=BAR_CLOSE_RETRY["retry_backoff"],
                retries=self.request.retries,
                maximum=BAR_CLOSE_RETRY["retry_backoff_max"],
                full_jitter=BAR_CLOSE_RETRY["retry_jitter"],
            )
            raise self.retry(
                args=[bar_events[k:]], kwargs={}, exc=exc, countdown=countdown
            ) from exc
    return handled


def _bar_name(event) -> str:
    if isinstance(event, dict):
        return f"{event.get('symbol')} {event.get('ts')}"
    return repr(event)[:80]


@shared_task(name="trading.scan")
def scan() -> int:
    """Safety net: evaluate the latest stored bar of every symbol (evaluate_bar is idempotent,
    so a bar the stream already handled is not evaluated twice), then decide (or mark stale)
    the signals a vanished bar task left undecided, and resume the approved entries whose
    attempt died before sending them (`trading.services.entry_resume`)."""
    from trading.pipeline import scan_latest, signals_resume
    from trading.services.entry_resume import entries_resume

    now = clock.now()
    handled = scan_latest(now=now)
    signals_resume(now=now)
    entries_resume(now=now)
    return handled


@shared_task(name="trading.exits_tick")
def exits_tick() -> int:
    """Beat tick of the exit manager: broker sync of working orders, clock-based exits
    (timeouts, session close), protection of every open trade, entry-limit escalation."""
    from trading.pipeline import exits_tick_run

    return exits_tick_run(now=clock.now())


@shared_task(name="trading.clock_tick")
def clock_tick(now_iso: str) -> int:
    """A replay's beat at `now_iso` (a minute boundary): the exit manager's clock rules and the
    paper fills of orders whose symbol printed no bar (`trading.core.step.clock_step`)."""
    from datetime import datetime

    from trading.pipeline import clock_tick as tick

    return tick(now=datetime.fromisoformat(now_iso))


@shared_task(name="trading.entry_escalate")
def entry_escalate(order_id: int) -> bool:
    """A pegged entry limit whose timeout passed becomes a market order (if still working)."""
    from trading.models import Order
    from trading.services import entry_limit_replace

    order = Order.objects.filter(pk=order_id).first()
    if order is None or not order.is_working:
        return False
    return entry_limit_replace(order=order, now=clock.now()) is not None


@shared_task(name="trading.cancel_stale")
def cancel_stale(minutes: int | None = None) -> int:
    from django.conf import settings

    from trading.services import orders_cancel_stale

    result = orders_cancel_stale(minutes=minutes or settings.STALE_ORDER_MINUTES)
    return len(result["cancelled"])


@shared_task(name="trading.account_snapshot")
def account_snapshot() -> str:
    from trading.services import account_snapshot_take

    return str(account_snapshot_take().pk)


@shared_task(name="trading.reconcile")
def reconcile(startup: bool = False) -> dict:
    from trading.reconciliation import reconcile_run

    return reconcile_run(now=clock.now(), startup=startup)


@shared_task(name="trading.heartbeat")
def heartbeat() -> str:
    from trading.services import heartbeat_record

    # Liveness is measured on the wall clock, not the (possibly replayed) market clock.
    return heartbeat_record(name=worker_name(), now=datetime.now(UTC)).name


def worker_name() -> str:
    return f"worker@{socket.gethostname()}:{os.getpid()}"
