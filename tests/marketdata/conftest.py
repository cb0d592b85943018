"""Market-data test helpers: fixture payloads copied from the shared workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_json(relative: str):
    return json.loads((FIXTURES / relative).read_text())


def fixture_text(relative: str) -> str:
    return (FIXTURES / relative).read_text()


@pytest.fixture
def no_sleep():
    """Records the retry waits instead of sleeping."""
    waits: list[float] = []
    return waits
