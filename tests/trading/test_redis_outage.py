"""A Redis restart under a running decision: the market clock and the request budget keep
answering (the flow in flight is not lost), and the bar task retries on Redis errors. Each test
kills a Redis of its own (tests/private_redis.py), never the shared one. The whole flow across a
Redis restart is tests/faults/test_db_faults.py's Redis scenario."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import pytest
import redis as redis_lib
from django.core.cache import caches
from django.test import override_settings

from autotrader_site.clock import MarketClock
from marketdata.clients.tradier_budget import TRADING, BudgetConfig, RequestBudget
from tests.private_redis import PrivateRedis


def _redis_cache(url: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}


@pytest.fixture
def own_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def test_clock_keeps_the_last_replay_time_while_redis_is_down(own_redis, caplog):
    replayed = datetime(2025, 9, 19, 14, 31, tzinfo=UTC)
    with override_settings(CACHES=_redis_cache(own_redis.url)):
        clock = MarketClock()
        MarketClock.set_replay_time(replayed)
        assert clock.now() == replayed
        own_redis.stop()
        caches["default"].close()
        with caplog.at_level(logging.WARNING, logger="autotrader_site.clock"):
            during = [clock.now(), clock.now()]
        # the replayed session's time, not the wall clock (years apart): a decision in flight
        # keeps the session's risk window
        assert during == [replayed, replayed]
        assert sum("cache unreadable" in r.getMessage() for r in caplog.records) == 1
        own_redis.start()  # an empty server: the replay is over, the wall clock is back
        caches["default"].close()
        after = clock.now()
    assert abs((after - datetime.now(UTC)).total_seconds()) < 60


def test_clock_without_a_replay_falls_back_to_the_wall_clock_when_redis_is_down(own_redis):
    own_redis.stop()
    with override_settings(CACHES=_redis_cache(own_redis.url)):
        now = MarketClock().now()
    assert abs((now - datetime.now(UTC)).total_seconds()) < 60


def _budget(client) -> RequestBudget:
    config = BudgetConfig(
        limits={TRADING: 4},
        reserve=0,
        window_sec=60.0,
        rate_share=0.5,
        max_wait_sec=0.5,
        prefix=f"autotrader:test:budget:{uuid.uuid4().hex}",
    )
    return RequestBudget(config, client)


def test_request_budget_paces_locally_while_redis_is_down(own_redis):
    client = redis_lib.Redis.from_url(own_redis.url, socket_timeout=1)
    budget = _budget(client)
    assert budget.try_take(TRADING, 0) == 0.0  # shared bucket on Redis
    own_redis.stop()
    # the outage does not raise into the order path: the process's own bucket answers under the
    # same rule — a burst of limit × (1 − rate share) = 4 × 0.5 = 2 tokens, then a wait of about
    # one refill (window / (limit × share) = 60 / 2 = 30 s)
    taken = [budget.try_take(TRADING, 0) for _ in range(3)]
    assert taken[:2] == [0.0, 0.0]
    assert 25.0 < taken[2] <= 30.0
