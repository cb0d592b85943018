"""The `/ws/live/` consumer over the real Redis channel layer and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from analytics.live import LiveConsumer
from marketdata.events import publish_bar_closed
from marketdata.replay import synthetic_sessions
from marketdata.services import bars_upsert
from strategies.models import Signal

pytestmark = pytest.mark.django_db(transaction=True)


def _bars(n: int):
    return synthetic_sessions(symbol="SPY", sessions=1, seed=3, end=date(2026, 3, 6))[:n]


async def _receive(communicator, kind: str, *, max_messages: int = 20) -> dict:
    """The next message of type `kind` (others are skipped); fails after `max_messages`."""
    for _ in range(max_messages):
        message = await communicator.receive_json_from(timeout=10)
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind!r} message among {max_messages}")


def _communicator(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    return communicator


def test_anonymous_socket_is_refused():
    async def scenario():
        communicator = _communicator(AnonymousUser())
        connected, code = await communicator.connect()
        assert not connected
        assert code == 4401

    async_to_sync(scenario)()


def test_subscribed_chart_gets_history_then_published_bars():
    bars = _bars(80)
    bars_upsert(bars=bars[:60])
    user = get_user_model().objects.create_user(username="watcher", password="x")

    async def scenario():
        communicator = _communicator(user)
        connected, _ = await communicator.connect()
        assert connected
        hello = await _receive(communicator, "hello")
        assert hello["symbols"] == ["SPY"]
        await communicator.send_json_to({"action": "subscribe", "symbols": ["spy", "BAD SYM"]})
        chart = await _receive(communicator, "chart")
        assert chart["symbol"] == "SPY"
        assert len(chart["candles"]) == 60
        assert chart["lines"]["ema_20"], "EMA20 is warm after 20 bars"
        assert not chart["lines"]["ema_50"] or len(chart["lines"]["ema_50"]) == 11
        # The streamer's path: publish on the channel layer without storing first, so only
        # the group message (not the database poll) can deliver it.
        for bar in bars[60:63]:
            await _publish(bar)
        times = []
        for _ in range(3):
            message = await _receive(communicator, "bar")
            assert message["symbol"] == "SPY"
            times.append(message["candle"]["time"])
            assert "vwap" in message["lines"]
        assert times == sorted(times) and len(set(times)) == 3
        assert times[0] > chart["candles"][-1]["time"]
        await communicator.disconnect()

    async_to_sync(scenario)()


async def _publish(bar):
    from channels.db import database_sync_to_async

    # publish_bar_closed is sync (the streamer and replay call it from sync code)
    await database_sync_to_async(publish_bar_closed)(bar)


def test_panel_is_pushed_again_when_a_signal_is_journaled():
    bars_upsert(bars=_bars(30))
    user = get_user_model().objects.create_user(username="watcher", password="x")

    async def scenario():
        from channels.db import database_sync_to_async

        communicator = _communicator(user)
        assert (await communicator.connect())[0]
        first = await _receive(communicator, "panel")
        assert first["signals"] == []
        assert first["trading_state"]["state"] == "ACTIVE"
        signal = await database_sync_to_async(Signal.objects.create)(
            setup="EMA_CROSS",
            symbol="SPY",
            execution_symbol="SPY",
            bar_ts=_bars(30)[-1].ts,
            outcome="risk_blocked",
            reasons=["OUTSIDE_WINDOW"],
        )
        second = await _receive(communicator, "panel")
        assert [s["id"] for s in second["signals"]] == [signal.pk]
        assert second["signals"][0]["blocked"] == [
            {"stage": "", "code": "OUTSIDE_WINDOW", "message": ""}
        ]
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_unknown_action_is_answered_with_an_error():
    user = get_user_model().objects.create_user(username="watcher", password="x")

    async def scenario():
        communicator = _communicator(user)
        assert (await communicator.connect())[0]
        await communicator.send_json_to({"action": "buy everything"})
        error = await _receive(communicator, "error")
        assert "unknown action" in error["error"]
        await communicator.disconnect()

    async_to_sync(scenario)()
