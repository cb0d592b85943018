"""Bar-close tasks sharded by symbol (BAR_CLOSE_SHARDS): each symbol's bars land on one queue,
published for real to Redis, and the health check shows a shard nobody consumes."""

from __future__ import annotations

import binascii
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import redis
from django.conf import settings as django_settings

from trading.bar_routing import bar_queue, bar_queues

SYMBOLS = ["SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META"]


def _event(symbol: str) -> dict:
    return {
        "symbol": symbol,
        "ts": datetime(2025, 9, 19, 14, 0, tzinfo=UTC).isoformat(),
        "open": 1.0,
        "high": 1.0,
        "low": 1.0,
        "close": 1.0,
        "volume": 1,
        "vwap": 1.0,
        "trades": 1,
        "source": "test",
    }


def test_one_queue_per_symbol_stable_across_processes():
    # the shard is CRC-32 of the upper-cased symbol (binascii's CRC-32, an independent
    # implementation of the same checksum), never Python's per-process salted hash()
    for shards in (2, 3, 8):
        for symbol in SYMBOLS:
            expected = f"bars.{binascii.crc32(symbol.encode()) % shards}"
            assert bar_queue(symbol, shards) == expected == bar_queue(symbol.lower(), shards)
    assert bar_queue("SPY", 1) is None and bar_queues(1) == []
    assert bar_queues(3) == ["bars.0", "bars.1", "bars.2"]
    code = "from trading.bar_routing import bar_queue; print(bar_queue('NVDA', 8))"
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            cwd=django_settings.BASE_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert seen == {bar_queue("NVDA", 8)}


def test_the_router_sends_other_tasks_and_unsharded_bars_to_the_default_queue(settings):
    from autotrader_site.celery import app

    router = app.amqp.router
    settings.BAR_CLOSE_SHARDS = 1
    assert router.route({}, "trading.on_bar_closed", args=(_event("SPY"),))["queue"].name == (
        app.conf.task_default_queue
    )
    settings.BAR_CLOSE_SHARDS = 4
    routed = router.route({}, "trading.on_bar_closed", args=(_event("SPY"),))
    assert routed["queue"].name == bar_queue("SPY", 4)
    by_kwarg = router.route(
        {}, "trading.on_bar_closed", args=(), kwargs={"bar_event": _event("SPY")}
    )
    assert by_kwarg["queue"].name == bar_queue("SPY", 4)
    assert router.route({}, "trading.scan", args=())["queue"].name == app.conf.task_default_queue


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_published_bars_land_on_their_shard_in_redis_and_health_sees_the_backlog(settings, db):
    from analytics.views import health_report
    from autotrader_site.celery import app
    from trading.tasks import on_bar_closed

    shards = 3
    settings.BAR_CLOSE_SHARDS = shards
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    client.delete(*bar_queues(shards))
    app.conf.task_always_eager = False  # a real publish (the conftest restores the flag)
    try:
        for symbol in SYMBOLS:
            on_bar_closed.delay(_event(symbol))
        expected = {q: 0 for q in bar_queues(shards)}
        for symbol in SYMBOLS:
            expected[bar_queue(symbol, shards)] += 1
        lengths = {q: client.llen(q) for q in bar_queues(shards)}
        assert lengths == expected and sum(lengths.values()) == len(SYMBOLS)
        assert len([n for n in lengths.values() if n]) >= 2  # ten symbols spread over shards

        settings.HEALTH_BAR_BACKLOG_MAX = max(expected.values()) - 1
        check = health_report()[0]["checks"]["bar_queues"]
        assert check["lengths"] == expected
        fullest = [q for q, n in expected.items() if n > settings.HEALTH_BAR_BACKLOG_MAX]
        assert check["backlogged"] == fullest and check["stale"] is True
        settings.HEALTH_BAR_BACKLOG_MAX = max(expected.values())
        assert health_report()[0]["checks"]["bar_queues"]["stale"] is False
    finally:
        client.delete(*bar_queues(shards))
        client.close()
