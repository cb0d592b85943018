"""The streamer's tick publishing (the newest second per symbol to `ticks.<SYMBOL>`), through
the process's kept loop rather than a fresh loop per send: what a group member receives, on
the real Redis channel layer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from marketdata.streamer.sink import StreamSink

T = datetime(2025, 9, 17, 14, 30, 5, tzinfo=UTC)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_each_symbols_newest_second_reaches_its_tick_group():
    layer = get_channel_layer()
    spy, qqq = async_to_sync(layer.new_channel)(), async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("ticks.SPY", spy)
    async_to_sync(layer.group_add)("ticks.QQQ", qqq)
    later = T + timedelta(seconds=1)
    rows = [  # (symbol, ts, open, high, low, close, volume, vwap, avg size, source)
        ("SPY", later, 2.0, 3.0, 1.0, 2.5, 20.0, None, None, "stream"),
        ("SPY", T, 1.0, 2.0, 0.5, 1.5, 10.0, None, None, "stream"),  # older: not sent
        ("QQQ", T, 5.0, 6.0, 4.0, 5.5, 30.0, None, None, "stream"),
    ]
    try:
        StreamSink(backfill_gaps=False)._publish_ticks(rows)
        got_spy = async_to_sync(layer.receive)(spy)
        got_qqq = async_to_sync(layer.receive)(qqq)
    finally:
        async_to_sync(layer.group_discard)("ticks.SPY", spy)
        async_to_sync(layer.group_discard)("ticks.QQQ", qqq)
    assert got_spy == {
        "type": "tick.update",
        "tick": {"symbol": "SPY", "ts": later.isoformat(), "open": 2.0, "high": 3.0,
                 "low": 1.0, "close": 2.5, "volume": 20.0},
    }  # fmt: skip
    assert got_qqq["tick"]["close"] == 5.5 and got_qqq["tick"]["ts"] == T.isoformat()
