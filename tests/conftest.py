"""Shared fixtures. Tests run against the real PostgreSQL and Redis named by DATABASE_URL and
REDIS_URL (the Makefile points them at the local services)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _shared_dir() -> Path:
    """The workspace's shared data: AUTOTRADER_SHARED_DIR, else beside the checkout, else the
    workspace's fixed place (a CI clone may live elsewhere on the same machine)."""
    explicit = os.environ.get("AUTOTRADER_SHARED_DIR")
    if explicit:
        return Path(explicit)
    for candidate in (ROOT.parent / "shared", Path("/work/shared")):
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared"


SHARED = _shared_dir()
SHARED_DATA = SHARED / "data"
SHARED_FIXTURES = SHARED / "fixtures"


def shared_file(relative: str) -> Path:
    """A file of the shared workspace; the test skips with the reason when it is absent."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared data {relative} is not present (clone outside the workspace)")
    return path


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _no_request_budget(settings, monkeypatch):
    """The shared Tradier request budget paces real Tradier (60 trading calls a minute); the
    local fakes answer hundreds a second, so tests (and the processes they start) run without
    it unless they build one (tests/trading/test_request_budget.py, bench_tradier_budget)."""
    settings.TRADIER_BUDGET_ENABLED = False
    monkeypatch.setenv("TRADIER_BUDGET_ENABLED", "0")


@pytest.fixture(autouse=True)
def _celery_app_follows_settings():
    """Every test starts with the project's Celery app current and its eager flag equal to
    CELERY_TASK_ALWAYS_EAGER: a test that built another app (a producer for a real worker) or
    switched the app to a real broker must not leave later tests sending tasks to Redis."""
    from django.conf import settings

    from autotrader_site.celery import app

    app.set_current()  # a producer app built by a test (Celery(...)) becomes current otherwise
    app.set_default()
    app.conf.task_always_eager = bool(settings.CELERY_TASK_ALWAYS_EAGER)
    yield


# Which tests share one pytest-xdist worker: tests/xdist_workers.py (its scheduler).
