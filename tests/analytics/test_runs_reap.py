"""A sweep or walk-forward whose worker died never gets its chord's summary: beat's reaper
marks it failed once it has run ANALYSIS_RUN_TIMEOUT_MIN, and leaves younger or finished runs
alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.models import SweepRun, WalkForwardRun
from analytics.services import runs_reap

pytestmark = pytest.mark.django_db


def _aged(model, *, minutes: int, status: str = "running", **fields):
    run = model.objects.create(status=status, **fields)
    # created_at is auto_now_add: move it back as a run started that long ago would be
    model.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=minutes))
    return run


def test_runs_left_running_past_the_timeout_are_failed_with_a_reason():
    old_sweep = _aged(SweepRun, minutes=241, grid={"A": [1, 2]})
    young_sweep = _aged(SweepRun, minutes=239)
    old_walk = _aged(WalkForwardRun, minutes=300, summary={"cells_done": 12})
    finished = _aged(WalkForwardRun, minutes=600, status="done", summary={"ok": True})
    now = timezone.now()

    marked = runs_reap(now=now, timeout_min=240)

    assert sorted(marked) == sorted([f"sweep #{old_sweep.pk}", f"walk-forward #{old_walk.pk}"])
    old_sweep.refresh_from_db()
    old_walk.refresh_from_db()
    for run in (old_sweep, old_walk):
        assert run.status == "failed" and run.finished_at == now
        assert "ANALYSIS_RUN_TIMEOUT_MIN" in run.summary["error"]
    assert old_walk.summary["cells_done"] == 12  # what it had is kept
    young_sweep.refresh_from_db()
    finished.refresh_from_db()
    assert young_sweep.status == "running" and young_sweep.finished_at is None
    assert finished.status == "done" and finished.summary == {"ok": True}
    assert runs_reap(now=now, timeout_min=240) == []  # nothing left to reap


def test_the_reaper_is_scheduled_after_migrate():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="autotrader: reap analysis runs")
    assert task.task == "analytics.runs_reap" and task.interval.every == 600
