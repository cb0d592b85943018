"""The one clock every time-dependent rule reads.

Live it is the wall clock; in replay and backtests it is the replayed bar's close time, so a
replay started at any hour trades exactly as the recorded session would. The replay clock lives
in the cache so worker processes share it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.cache import cache

_REPLAY_KEY = "autotrader:clock:replay_now"


class Clock:
    def now(self) -> datetime:
        raise NotImplementedError


class WallClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock(Clock):
    """A settable clock for tests and the backtester."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def set(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


class MarketClock(Clock):
    """Wall clock unless a replay session has published its time."""

    def now(self) -> datetime:
        replay_now = cache.get(_REPLAY_KEY)
        if replay_now is not None:
            return datetime.fromisoformat(replay_now)
        return datetime.now(UTC)

    @staticmethod
    def set_replay_time(at: datetime | None) -> None:
        if at is None:
            cache.delete(_REPLAY_KEY)
        else:
            cache.set(_REPLAY_KEY, at.isoformat(), timeout=None)


clock = MarketClock()
