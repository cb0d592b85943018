"""Helpers for strategy tests: hand-built sessions of 1-minute bars."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from marketdata.types import BarData

ET = ZoneInfo("America/New_York")


def et(day: date, hhmm: str) -> datetime:
    """Bar START at New York wall time hh:mm on `day`, as UTC."""
    h, m = map(int, hhmm.split(":"))
    return datetime.combine(day, time(h, m), ET).astimezone(UTC)


def make_bars(symbol: str, start: datetime, closes, *, volume=1000.0, spread=0.05, source="replay"):
    """One bar per minute from `start` with the given closes (open = previous close)."""
    out = []
    prev = closes[0]
    for i, c in enumerate(closes):
        vol = volume[i] if isinstance(volume, list | tuple) else volume
        out.append(
            BarData(
                symbol=symbol,
                ts=start + timedelta(minutes=i),
                open=prev,
                high=max(prev, c) + spread,
                low=min(prev, c) - spread,
                close=c,
                volume=vol,
                source=source,
            )
        )
        prev = c
    return out


@pytest.fixture(autouse=True)
def _fresh_engines(settings, tmp_path):
    """Every test starts like a fresh worker process, journaling into its own file."""
    from strategies.feature_store import engines_reset
    from strategies.options_gate import options_fetcher_set

    settings.EVENTS_JOURNAL = tmp_path / "events.jsonl"
    settings.SESSION_POLICY_FILE = ""
    settings.POLYGON_API_KEY = ""
    engines_reset()
    options_fetcher_set(None)
    yield
    engines_reset()
    options_fetcher_set(None)
