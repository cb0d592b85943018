"""Periodic jobs in django-celery-beat's database, created idempotently (post_migrate and
`manage.py setup_schedules`). Other apps add theirs through `schedule_ensure`."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import transaction


@transaction.atomic
def schedule_ensure(
    name: str,
    task: str,
    *,
    every_sec: int | None = None,
    crontab: str | dict | None = None,
    kwargs: dict | None = None,
    enabled: bool = True,
):
    """Create or update the periodic task `name` running `task` every `every_sec` seconds or
    on a crontab ("m h dom mon dow" string or a dict of those fields, UTC)."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    if (every_sec is None) == (crontab is None):
        raise ValueError("give exactly one of every_sec or crontab")
    fields: dict = {"task": task, "kwargs": json.dumps(kwargs or {}), "enabled": enabled}
    if every_sec is not None:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=int(every_sec), period=IntervalSchedule.SECONDS
        )
        fields.update(interval=interval, crontab=None)
    else:
        if isinstance(crontab, str):
            parts = crontab.split()
            if len(parts) != 5:
                raise ValueError(f"crontab {crontab!r} needs 5 fields")
            crontab = dict(
                zip(
                    ["minute", "hour", "day_of_month", "month_of_year", "day_of_week"],
                    parts,
                    strict=True,
                )
            )
        schedule, _ = CrontabSchedule.objects.get_or_create(**crontab, timezone="UTC")
        fields.update(crontab=schedule, interval=None)
    task_row, created = PeriodicTask.objects.get_or_create(name=name, defaults=fields)
    if not created:
        changed = False
        for key, value in fields.items():
            if getattr(task_row, key) != value:
                setattr(task_row, key, value)
                changed = True
        if changed:
            task_row.save()
    return task_row


DEFAULT_SCHEDULES = (
    ("autotrader: scan", "trading.scan", "SCAN_INTERVAL_SEC"),
    ("autotrader: exit manager", "trading.exits_tick", "EXIT_MANAGER_INTERVAL_SEC"),
    ("autotrader: reconcile", "trading.reconcile", "RECONCILE_INTERVAL_SEC"),
    ("autotrader: account snapshot", "trading.account_snapshot", "ACCOUNT_SNAPSHOT_INTERVAL_SEC"),
    ("autotrader: worker heartbeat", "trading.heartbeat", None),
)


def schedules_default_ensure() -> list[str]:
    names = []
    for name, task, setting in DEFAULT_SCHEDULES:
        every = getattr(settings, setting) if setting else 30
        schedule_ensure(name, task, every_sec=every)
        names.append(name)
    schedule_ensure(
        "autotrader: cancel stale orders",
        "trading.cancel_stale",
        every_sec=60,
        kwargs={"minutes": settings.STALE_ORDER_MINUTES},
    )
    names.append("autotrader: cancel stale orders")
    # 09:00 UTC Tue-Sat: the previous session's bars (flat files, else REST) — marketdata.tasks
    schedule_ensure(
        "autotrader: nightly backfill",
        "marketdata.backfill_previous_session",
        crontab="0 9 * * 2-6",
    )
    names.append("autotrader: nightly backfill")
    return names
