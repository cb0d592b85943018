"""The dashboard is pushed, not polled: committed ledger writes become one `live.event` each
transaction, an idle page costs no query, a fill reaches the page through the Redis channel layer,
the in-memory layer falls back to polling, and a Redis outage shows as stale panels that recover
when Redis returns. Real PostgreSQL and Redis (a private redis-server for the outage)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.utils import timezone

from analytics.live import LiveConsumer
from autotrader_site.live_events import ACCOUNT_GROUP, live_event_publish
from tests.private_redis import private_redis_running
from trading.models import Fill, Order, Position

pytestmark = pytest.mark.django_db(transaction=True)


# --- helpers -------------------------------------------------------------------------------------
def _order(tag: str) -> Order:
    return Order.objects.create(
        tag=tag,
        symbol="SPY",
        side="buy",
        qty=10,
        order_type="market",
        status="filled",
        created_at=timezone.now(),
    )


def _fill(order: Order, fill_id: str) -> Fill:
    return Fill.objects.create(
        order=order,
        broker_fill_id=fill_id,
        symbol="SPY",
        side="buy",
        qty=10,
        price=Decimal("500.25"),
        ts=timezone.now(),
    )


def _order_filled(tag: str) -> int:
    """What the trading stage writes when an entry fills: order, fill, position, one commit."""
    with transaction.atomic():
        order = _order(tag)
        fill = _fill(order, f"{tag}-fill")
        Position.objects.update_or_create(
            symbol="SPY", defaults={"qty": 10, "avg_price": Decimal("500.25")}
        )
    return fill.pk


class _GroupListener:
    """A bare channel in the `live.account` group, to see exactly what was published."""

    def __init__(self):
        self.layer = get_channel_layer()
        # A plain channel name (no "!"): received directly, so each call may use its own loop.
        self.name = f"test-live-{uuid.uuid4().hex}"
        async_to_sync(self.layer.group_add)(ACCOUNT_GROUP, self.name)

    def messages(self, *, wait: float = 0.5) -> list[dict]:
        async def drain():
            got = []
            while True:
                try:
                    got.append(await asyncio.wait_for(self.layer.receive(self.name), wait))
                except TimeoutError:
                    return got

        return async_to_sync(drain)()


def _communicator(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    return communicator


async def _receive(communicator, kind: str, *, timeout: float = 10, max_messages: int = 30):
    for _ in range(max_messages):
        message = await communicator.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind!r} message among {max_messages}")


def _watcher():
    return get_user_model().objects.create_user(username="watcher", password="x")


# --- the publish function ------------------------------------------------------------------------
def test_one_transaction_of_ledger_writes_is_one_event_after_commit():
    listener = _GroupListener()
    with transaction.atomic():
        order = _order("t-1")
        _fill(order, "f-1")
        assert listener.messages(wait=0.3) == []  # nothing before the commit
    (message,) = listener.messages()
    assert message["type"] == "live.event"
    assert message["kinds"] == ["fill", "order"]
    assert abs(message["sent_at"] - time.time()) < 60


def test_rolled_back_writes_publish_nothing_and_autocommit_writes_publish_at_once():
    listener = _GroupListener()
    with pytest.raises(RuntimeError), transaction.atomic():
        _order("t-2")
        raise RuntimeError("the stage failed")
    assert listener.messages(wait=0.3) == []
    _order("t-3")  # autocommit: the save is committed when it returns
    assert [m["kinds"] for m in listener.messages()] == [["order"]]


def test_a_change_outside_a_rolled_back_savepoint_is_still_published():
    listener = _GroupListener()
    with transaction.atomic():
        try:
            with transaction.atomic():
                _order("t-4")  # registers the flush inside the savepoint
                raise RuntimeError("inner step failed")
        except RuntimeError:
            pass
        _order("t-5")  # kept: needs a flush that survives the savepoint's rollback
    messages = listener.messages()
    assert len(messages) == 1 and "order" in messages[0]["kinds"]
    assert Order.objects.filter(tag="t-5").exists()


def test_sends_from_sync_code_reuse_one_redis_connection(private_layer):
    """A worker's sends share one connection (the kept loop's pool), and every send arrives.
    Counted by the private server itself: `total_connections_received` in INFO stats."""
    import redis as redis_py

    listener = _GroupListener()  # its group_add: its own loop, its own connection (not counted)
    server = redis_py.Redis.from_url(private_layer.url)
    before = server.info("stats")["total_connections_received"]
    for _ in range(5):
        live_event_publish(kind="order")  # autocommit: sent at once, from plain sync code
    opened = server.info("stats")["total_connections_received"] - before
    # 5 sends in sequence: the first opens the kept loop's connection, the other 4 reuse it
    # (a fresh event loop per send, as async_to_sync makes outside a server, would open 5)
    assert opened == 1
    assert [m["kinds"] for m in listener.messages()] == [["order"]] * 5


def test_bar_events_reuse_the_kept_connection_too(private_layer, monkeypatch):
    """The bar-close event's dashboard send goes through the same kept loop: a replay or the
    stream publishing bar after bar opens one Redis connection, not one per bar."""
    import django.dispatch
    import redis as redis_py

    from marketdata import events
    from marketdata.types import BarData

    # the pipeline's receivers are not what this counts: a signal with none of them
    monkeypatch.setattr(events, "bar_closed", django.dispatch.Signal())
    layer = get_channel_layer()
    name = f"test-bars-{uuid.uuid4().hex}"
    async_to_sync(layer.group_add)(events.symbol_group("SPY"), name)
    server = redis_py.Redis.from_url(private_layer.url)
    before = server.info("stats")["total_connections_received"]
    start = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    for minute in range(5):
        ts = start + timedelta(minutes=minute)
        events.publish_bar_closed(BarData("SPY", ts, 1.0, 1.0, 1.0, 1.0, 10.0, source="test"))
    opened = server.info("stats")["total_connections_received"] - before
    # the first send opens the kept loop's connection to this test's new server, the other 4
    # reuse it (async_to_sync per bar would open 5)
    assert opened == 1

    async def drain():
        got = []
        while True:
            try:
                got.append(await asyncio.wait_for(layer.receive(name), 0.5))
            except TimeoutError:
                return got

    received = async_to_sync(drain)()
    assert [m["type"] for m in received] == ["bar.closed"] * 5


def test_a_batch_of_bars_reaches_every_symbols_group_even_if_the_pipeline_fails(
    private_layer, monkeypatch
):
    """publish_bars_closed: the pipeline's dispatch first, then one dashboard message per bar
    to its own symbol's group — sent even when the dispatch raised."""
    import django.dispatch

    from marketdata import events
    from marketdata.types import BarData

    failing = django.dispatch.Signal()

    def boom(sender, bars, **kwargs):
        raise RuntimeError("broker gone")

    failing.connect(boom, weak=False)
    monkeypatch.setattr(events, "bars_closed", failing)
    layer = get_channel_layer()
    names = {}
    for symbol in ("SPY", "QQQ"):
        names[symbol] = f"test-batch-{symbol}-{uuid.uuid4().hex}"
        async_to_sync(layer.group_add)(events.symbol_group(symbol), names[symbol])
    ts = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    bars = [BarData(s, ts, 1.0, 1.0, 1.0, 1.0, 10.0, source="test") for s in ("SPY", "QQQ")]
    with pytest.raises(RuntimeError, match="broker gone"):
        events.publish_bars_closed(bars)

    async def one(name):
        return await asyncio.wait_for(layer.receive(name), 2)

    for symbol, name in names.items():
        message = async_to_sync(one)(name)
        assert message["type"] == "bar.closed" and message["bar"]["symbol"] == symbol


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown live event kind"):
        live_event_publish(kind="everything")


# --- the consumer --------------------------------------------------------------------------------
def test_idle_page_makes_no_queries_and_a_fill_is_pushed():
    user = _watcher()
    connection = connections["default"]  # the consumer's database calls run on this thread

    async def scenario():
        communicator = _communicator(user)
        assert (await communicator.connect())[0]
        hello = await _receive(communicator, "hello")
        assert hello["mode"] == "push" and hello["poll_seconds"] is None
        first = await _receive(communicator, "panel")
        assert first["fills"] == []
        connection.force_debug_cursor = True
        before = len(connection.queries_log)
        await asyncio.sleep(2.5)  # longer than two periods of the old 1 s poll
        idle_queries = len(connection.queries_log) - before
        connection.force_debug_cursor = False
        assert idle_queries == 0
        fill_id = await database_sync_to_async(_order_filled)("t-push")
        panel = await _receive(communicator, "panel")
        assert [f["id"] for f in panel["fills"]] == [fill_id]
        assert panel["account"]["open_positions"] == 1
        assert panel["event_sent_at"] <= time.time()
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_in_memory_layer_falls_back_to_polling(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    user = _watcher()

    def write_without_model_signals() -> int:
        order = _order("t-poll")
        (fill,) = Fill.objects.bulk_create(  # bulk writes send no post_save: only a poll sees it
            [
                Fill(
                    order=order,
                    broker_fill_id="f-poll",
                    symbol="SPY",
                    side="buy",
                    qty=10,
                    price=Decimal("1"),
                    ts=timezone.now(),
                )
            ]
        )
        return fill.pk

    async def scenario():
        communicator = _communicator(user)
        assert (await communicator.connect())[0]
        hello = await _receive(communicator, "hello")
        assert hello["mode"] == "poll" and hello["poll_seconds"] == 1.0
        await _receive(communicator, "panel")
        fill_id = await database_sync_to_async(write_without_model_signals)()
        panel = await _receive(communicator, "panel")
        while fill_id not in [f["id"] for f in panel["fills"]]:  # the order's panel may come first
            panel = await _receive(communicator, "panel")
        await communicator.disconnect()

    async_to_sync(scenario)()


# --- Redis outage -----------------------------------------------------------------------------
@pytest.fixture
def private_layer(settings):
    """The channel layer on a redis-server of this test's own (never the shared one)."""
    with private_redis_running() as redis:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [redis.url]},
            }
        }
        yield redis


def test_panels_go_stale_when_redis_dies_and_recover_when_it_returns(private_layer):
    user = _watcher()

    async def scenario():
        communicator = _communicator(user)
        assert (await communicator.connect())[0]
        assert (await _receive(communicator, "hello"))["mode"] == "push"
        await _receive(communicator, "panel")

        private_layer.stop()
        stale = await _receive(communicator, "status")
        assert stale["live"] is False and "unreachable" in stale["reason"]
        # Trading goes on meanwhile: the write commits, its publish fails quietly.
        fill_id = await database_sync_to_async(_order_filled)("t-outage")
        # Nothing claims to be fresh while Redis is gone.
        assert await communicator.receive_nothing(timeout=1.5)

        private_layer.start()
        panel = await _receive(communicator, "panel", timeout=15)
        assert [f["id"] for f in panel["fills"]] == [fill_id]  # what happened meanwhile
        back = await _receive(communicator, "status")
        assert back["live"] is True
        # Pushed again after the recovery: the consumer re-joined its group.
        second = await database_sync_to_async(_order_filled)("t-after")
        panel = await _receive(communicator, "panel")
        assert second in [f["id"] for f in panel["fills"]]
        await communicator.disconnect()

    async_to_sync(scenario)()
