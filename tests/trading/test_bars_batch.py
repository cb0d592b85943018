"""Bar-close batching (issue 18): the bars a stream write closes together go out as ONE
`bars_closed` dispatch and one `trading.on_bars_closed` task per shard; the task handles its bars
in order, each once, and a retry after an outage at bar k resumes at bar k without deciding any
signal twice. Real PostgreSQL, and Redis for the routing of a published batch."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from celery.signals import task_prerun
from django.conf import settings as django_settings
from django.db import OperationalError

from marketdata.bar_builder import SecondAgg
from marketdata.events import bars_closed, publish_bars_closed
from marketdata.services import bars_upsert
from marketdata.streamer.sink import StreamSink
from marketdata.types import BarData
from strategies.models import FeatureSnapshot, Signal
from trading import pipeline
from trading.bar_routing import bar_batches, bar_queues

BAR_TS = datetime(2025, 9, 17, 14, 30, tzinfo=UTC)  # 10:30 New York, a Wednesday
SYMBOLS = ["SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META"]


def _shard(symbol: str, shards: int) -> str:
    # CRC-32 (binascii's, independent of the zlib call the router uses) mod the shard count
    return f"bars.{binascii.crc32(symbol.encode()) % shards}"


def _expected_batches(symbols: list[str], shards: int) -> list[list[str]]:
    """Symbols per shard, shards in order of first appearance, symbols in publish order."""
    by_shard: dict[str, list[str]] = {}
    for symbol in symbols:
        by_shard.setdefault(_shard(symbol, shards), []).append(symbol)
    return list(by_shard.values())


def _bar(symbol: str, i: int, ts: datetime = BAR_TS) -> BarData:
    price = 100.0 + i
    return BarData(symbol, ts, price, price + 0.4, price - 0.2, price + 0.2, 50_000.0, price)


@pytest.fixture
def tasks_run():
    """(task name, first argument) of every task that starts, eager ones included."""
    seen: list[tuple[str, object]] = []

    def record(sender=None, task=None, args=None, kwargs=None, **extra):
        seen.append((task.name, (args or [None])[0]))

    task_prerun.connect(record, weak=False)
    yield seen
    task_prerun.disconnect(record)


def test_bar_batches_split_by_shard_and_keep_order():
    events = [_bar(s, i).as_event() for i, s in enumerate(SYMBOLS)]
    later = _bar("SPY", 0, BAR_TS.replace(minute=31)).as_event()  # SPY's next minute, last
    batches = bar_batches([*events, later], 3)
    want = _expected_batches(SYMBOLS, 3)
    spy_batch = next(k for k, b in enumerate(want) if "SPY" in b)
    want[spy_batch].append("SPY")
    assert [[e["symbol"] for e in b] for b in batches] == want
    assert [e["ts"] for e in batches[spy_batch] if e["symbol"] == "SPY"] == [
        BAR_TS.isoformat(),
        BAR_TS.replace(minute=31).isoformat(),
    ]
    assert bar_batches(events, 1) == [events]  # unsharded: one batch, as given


@pytest.mark.django_db
def test_a_minute_published_together_is_one_task_per_shard_each_bar_once_in_order(
    paper, settings, tasks_run, steps
):
    shards = 3
    settings.BAR_CLOSE_SHARDS = shards
    bars = [_bar(s, i) for i, s in enumerate(SYMBOLS)]
    bars_upsert(bars=bars)
    publish_bars_closed(bars)

    want = _expected_batches(SYMBOLS, shards)
    assert len(want) >= 2  # ten symbols over three shards: the test does split the minute
    assert [name for name, _ in tasks_run] == ["trading.on_bars_closed"] * len(want)
    assert [[e["symbol"] for e in batch] for _, batch in tasks_run] == want
    # every bar claimed once, in the order of its batch, batches in order; all quiet (nothing
    # fires on one stored bar, nothing held), so none needed the full step and each claim is
    # done at once (trading.bar_batch)
    snapshots = FeatureSnapshot.objects.filter(bar_ts=BAR_TS).order_by("id")
    assert list(snapshots.values_list("symbol", flat=True)) == [s for b in want for s in b]
    assert set(snapshots.values_list("state", flat=True)) == {"done"}
    assert steps == []


@pytest.mark.django_db(transaction=True)  # the sink writes from its own thread
def test_the_stream_sink_announces_a_flush_in_one_dispatch(paper, settings):
    """The streamer's default path: the minute of N symbols that one flush closes reaches the
    pipeline as one `bars_closed` call (not N `bar_closed` ones), every symbol once."""
    settings.BAR_CLOSE_SHARDS = 1
    received: list[list[tuple[str, datetime]]] = []

    def receiver(sender, bars, **kwargs):
        received.append([(b.symbol, b.ts) for b in bars])

    bars_closed.connect(receiver, weak=False, dispatch_uid="test.bars_batch")
    try:

        async def one_minute() -> None:
            sink = StreamSink(backfill_gaps=False, publish_ticks=False)
            start = int(BAR_TS.timestamp())
            for sec in range(60):  # a full minute of seconds for every symbol
                await sink.add(
                    [SecondAgg(s, start + sec, 100.0, 100.1, 99.9, 100.0, 10.0) for s in SYMBOLS]
                )
            await sink.close_open_minutes()
            await sink.aclose()

        asyncio.run(one_minute())
    finally:
        bars_closed.disconnect(dispatch_uid="test.bars_batch")
    assert len(received) == 1
    assert sorted(received[0]) == sorted((s, BAR_TS) for s in SYMBOLS)


def _claimed_bar_with_an_undecided_signal(symbol: str, i: int) -> Signal:
    """What an attempt killed between evaluation and decision leaves behind, per bar."""
    bars_upsert(bars=[_bar(symbol, i)])
    FeatureSnapshot.objects.create(symbol=symbol, bar_ts=BAR_TS, features={})
    price = Decimal(100 + i) + Decimal("0.2")
    return Signal.objects.create(
        setup="EMA_CROSS",
        symbol=symbol,
        execution_symbol=symbol,
        bar_ts=BAR_TS,
        entry_price=price,
        stop_price=price - 1,
        target_one=price + 1,
        target_two=price + 2,
    )


@pytest.mark.django_db
def test_a_batch_retried_after_an_outage_at_bar_k_handles_every_bar_once(
    paper, settings, monkeypatch, tasks_run, steps
):
    from trading.models import Order
    from trading.tasks import on_bars_closed

    settings.BAR_CLOSE_SHARDS = 1
    symbols = SYMBOLS[:4]
    signals = [_claimed_bar_with_an_undecided_signal(s, i) for i, s in enumerate(symbols)]
    events = [_bar(s, i).as_event() for i, s in enumerate(symbols)]
    real = pipeline.lifecycle.signal_decide
    decided: list[str] = []  # symbol of each decision that went through
    failed_once: list[str] = []
    k = 2  # the database goes away under the third bar's signal, first attempt only

    def decide(ledger, candidate, *args, **kwargs):
        if candidate.symbol == symbols[k] and not failed_once:
            failed_once.append(candidate.symbol)
            raise OperationalError("server closed the connection unexpectedly")
        decided.append(candidate.symbol)
        return real(ledger, candidate, *args, **kwargs)

    monkeypatch.setattr(pipeline.lifecycle, "signal_decide", decide)
    result = on_bars_closed.apply(args=[events], throw=False)  # the retry runs inline

    assert result.successful() and failed_once == [symbols[k]]
    # first attempt: bars 0, 1, 2 (fails); the retry: bars 2, 3 only (0 and 1 are not re-run)
    assert steps == [(s, BAR_TS) for s in [*symbols[:3], *symbols[k:]]]
    assert [[e["symbol"] for e in batch] for _, batch in tasks_run] == [symbols, symbols[k:]]
    assert decided == symbols  # each signal decided exactly once, in bar order
    for signal in signals:
        signal.refresh_from_db()
        assert signal.outcome not in ("generated", "failed")
        assert Order.objects.filter(signal=signal, role="entry").count() <= 1
    # every claim is done once its bar's step ran to its end
    claims = FeatureSnapshot.objects.filter(bar_ts=BAR_TS, symbol__in=symbols)
    assert sorted(claims.values_list("state", flat=True)) == ["done"] * len(symbols)
    # run the whole batch again (a redelivered message): every bar is done, none is stepped
    steps.clear()
    assert on_bars_closed.apply(args=[events]).get() == 0
    assert steps == [] and decided == symbols


@pytest.mark.django_db
def test_a_bad_bar_is_logged_and_the_rest_of_the_batch_still_runs(paper, settings, steps, caplog):
    from trading.tasks import on_bars_closed

    settings.BAR_CLOSE_SHARDS = 1
    bars = [_bar(s, i) for i, s in enumerate(SYMBOLS[:3])]
    bars_upsert(bars=bars)
    events = [b.as_event() for b in bars]
    broken = {"symbol": "SPY"}  # no ts, no prices: BarData.from_event raises
    on_bars_closed.apply(args=[[events[0], broken, *events[1:]]]).get()
    claims = FeatureSnapshot.objects.filter(bar_ts=BAR_TS).order_by("id")
    assert list(claims.values_list("symbol", "state")) == [(b.symbol, "done") for b in bars]
    assert steps == []  # quiet bars: claimed in the batch, no full step
    assert "bar-close task failed for 'SPY None'" in caplog.text


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_a_published_batch_lands_once_on_its_shard_queue_in_redis(settings, db):
    from autotrader_site.celery import app

    shards = 3
    settings.BAR_CLOSE_SHARDS = shards
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    client.delete(*bar_queues(shards), app.conf.task_default_queue)
    app.conf.task_always_eager = False  # a real publish (the conftest restores the flag)
    try:
        publish_bars_closed([_bar(s, i) for i, s in enumerate(SYMBOLS)])
        want = {_shard(batch[0], shards): batch for batch in _expected_batches(SYMBOLS, shards)}
        got: dict[str, list[str]] = {}
        for queue in bar_queues(shards):
            messages = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
            assert len(messages) <= 1  # one message per shard for the minute
            for message in messages:
                assert message["headers"]["task"] == "trading.on_bars_closed"
                args = json.loads(base64.b64decode(message["body"]))[0]
                got[queue] = [e["symbol"] for e in args[0]]
        assert got == want
        assert client.llen(app.conf.task_default_queue) == 0  # nothing on the default queue
    finally:
        client.delete(*bar_queues(shards))
        client.close()


def test_the_router_sends_a_batch_to_its_first_bars_shard(settings):
    from autotrader_site.celery import app

    router = app.amqp.router
    settings.BAR_CLOSE_SHARDS = 4
    batch = [_bar(s, i).as_event() for i, s in enumerate(SYMBOLS)]
    one_shard = [e for e in batch if _shard(e["symbol"], 4) == _shard("NVDA", 4)]
    by_arg = router.route({}, "trading.on_bars_closed", args=(one_shard,))
    assert by_arg["queue"].name == _shard("NVDA", 4)
    by_kwarg = router.route({}, "trading.on_bars_closed", args=(), kwargs={"bar_events": one_shard})
    assert by_kwarg["queue"].name == _shard("NVDA", 4)
    # an empty or malformed batch is not routed by symbol (default queue), never a crash
    for args in (([],), ({"symbol": "SPY"},), ()):
        routed = router.route({}, "trading.on_bars_closed", args=args)
        assert routed["queue"].name == app.conf.task_default_queue


@pytest.mark.django_db
def test_a_bar_that_keeps_failing_is_given_up_after_the_retries_and_the_rest_still_run(
    paper, settings, monkeypatch, steps
):
    from trading.tasks import BAR_CLOSE_RETRY, on_bars_closed

    settings.BAR_CLOSE_SHARDS = 1
    symbols = SYMBOLS[:3]
    signals = [_claimed_bar_with_an_undecided_signal(s, i) for i, s in enumerate(symbols)]
    real = pipeline.lifecycle.signal_decide

    def decide(ledger, candidate, *args, **kwargs):
        if candidate.symbol == symbols[1]:  # this bar's decision never gets a connection
            raise OperationalError("canceling statement due to statement timeout")
        return real(ledger, candidate, *args, **kwargs)

    monkeypatch.setattr(pipeline.lifecycle, "signal_decide", decide)
    # eager retries nest (each retry's apply runs inside the previous one): with propagation on,
    # the second retry's Retry would surface instead of running it, so run as a worker would
    from autotrader_site.celery import app

    propagates, app.conf.task_eager_propagates = app.conf.task_eager_propagates, False
    events = [_bar(s, i).as_event() for i, s in enumerate(symbols)]
    try:
        assert on_bars_closed.apply(args=[events], throw=False).successful()
    finally:
        app.conf.task_eager_propagates = propagates
    tries = 1 + BAR_CLOSE_RETRY["max_retries"]  # the first attempt and 12 retries
    assert steps == [(symbols[0], BAR_TS), *[(symbols[1], BAR_TS)] * tries, (symbols[2], BAR_TS)]
    outcomes = []
    for signal in signals:
        signal.refresh_from_db()
        outcomes.append(signal.outcome)
    assert outcomes[1] == "generated"  # left for the scan's resume (not recorded as failed)
    assert outcomes[0] not in ("generated", "failed") and outcomes[2] not in ("generated", "failed")


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_health_sees_an_unconsumed_shard_after_more_than_five_minutes_of_batches(settings, db):
    """Default HEALTH_BAR_BACKLOG_MAX (5): the streamer queues one task per shard per minute,
    so a shard nobody consumes is stale once it holds 6 minutes, not 1000."""
    from analytics.views import health_report
    from autotrader_site.celery import app

    shards = 3
    settings.BAR_CLOSE_SHARDS = shards
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    client.delete(*bar_queues(shards))
    app.conf.task_always_eager = False  # a real publish (the conftest restores the flag)
    used = sorted({_shard(s, shards) for s in SYMBOLS})
    try:
        for minute in range(5):
            ts = BAR_TS.replace(minute=minute)
            publish_bars_closed([_bar(s, i, ts) for i, s in enumerate(SYMBOLS)])
        check = health_report()[0]["checks"]["bar_queues"]
        assert {q: n for q, n in check["lengths"].items() if n} == {q: 5 for q in used}
        assert check["stale"] is False  # 5 tasks = 5 minutes: not more than 5
        publish_bars_closed([_bar(s, i, BAR_TS.replace(minute=5)) for i, s in enumerate(SYMBOLS)])
        check = health_report()[0]["checks"]["bar_queues"]
        assert check["backlogged"] == used and check["stale"] is True  # 6 > 5
    finally:
        client.delete(*bar_queues(shards))
        client.close()
