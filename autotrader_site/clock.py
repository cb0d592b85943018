"""The one clock every time-dependent rule reads.

Live it is the wall clock; in replay and backtests it is the replayed bar's close time, so a
replay started at any hour trades exactly as the recorded session would. The replay clock lives
in the cache so worker processes share it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.core.cache import cache

log = logging.getLogger(__name__)

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
    """Wall clock unless a replay session has published its time.

    The shared replay time lives in the cache (Redis). While the cache cannot be read (a Redis
    restart) the clock answers with the last replay time this process read, or the wall clock
    if it never read one: a decision in flight must not fail because Redis blinked."""

    def __init__(self) -> None:
        self._last_replay: str | None = None
        self._cache_down = False

    def now(self) -> datetime:
        try:
            replay_now = cache.get(_REPLAY_KEY)
        except Exception as exc:  # noqa: BLE001 - any cache backend's outage error
            if not self._cache_down:
                log.warning("clock: cache unreadable (%s); last known time in use", exc)
            self._cache_down = True
            replay_now = self._last_replay
        else:
            if self._cache_down:
                log.info("clock: cache readable again")
            self._cache_down = False
            self._last_replay = replay_now
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
