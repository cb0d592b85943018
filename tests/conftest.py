"""Shared fixtures. Tests run against the real PostgreSQL and Redis named by DATABASE_URL and
REDIS_URL (the Makefile points them at the local services)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
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
