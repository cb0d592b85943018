"""The session-close flatten fires on the clock in a real Celery worker process, not only in an
eager test: a paper session whose SPY feed stops at 15:49 New York with a position open is
replayed through the live path in this process (bars stored and evaluated, no clock after the
last bar), then the beat's `trading.clock_tick` for 15:49..15:58 runs in a separate prefork
worker against the same database. The rule (FLATTEN_BEFORE_CLOSE_MIN = 5): the exit is placed
at 15:55; with no bar after it, the paper fill model fills it two minutes later (15:57) at the
last close minus half the 1-cent spread and the half-cent slippage, rounded down to the cent.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from datetime import time as clock_time

import pytest

from tests.analytics.test_clock_flatten import (
    END,
    FEED_STOPS,
    NO_TIME_STOP,
    NY,
    _bars_open_at_the_stop,
    _flat_fill,
    _last_close,
)
from tests.faults.lifecycle import celery, kill_group, process_env, start
from tests.faults.test_sigterm import _database_url, _redis_url


def _replay_without_the_clock_after(bars) -> None:
    """The live path for `bars` (each stored, announced, evaluated; the beat between bars as a
    replay runs it), and nothing after the last bar: the feed just stops."""
    from autotrader_site.clock import MarketClock
    from marketdata.replay import ReplayFeed, publish_clock_tick, store_and_publish

    ReplayFeed(
        bars,
        on_bar=store_and_publish,
        set_clock=MarketClock.set_replay_time,
        on_clock=publish_clock_tick,
        clock_end=None,
        speed=0,  # as fast as it goes (the default paces a bar a second)
    ).run()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_clock_tick_task_on_a_real_worker_flattens_after_the_feed_stops(settings, tmp_path):
    from celery import Celery

    from marketdata.services import bars_upsert
    from strategies.feature_store import engines_reset
    from trading.models import Fill, Position, Trade

    settings.EVENTS_JOURNAL = tmp_path / "events.jsonl"
    settings.TRADE_TIMEOUT_MIN = NO_TIME_STOP["TRADE_TIMEOUT_MIN"]
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the bars' own tasks run here
    engines_reset()
    cut, _, _ = _bars_open_at_the_stop()
    restart = datetime.combine(END, clock_time(14, 30), NY)
    bars_upsert(bars=[b for b in cut if b.ts < restart])
    _replay_without_the_clock_after([b for b in cut if b.ts >= restart])
    stop_at = datetime.combine(END, FEED_STOPS, NY)
    held = list(Trade.objects.filter(status="open"))
    assert held, "a trade must be open when the feed stops"

    queue = f"clock-{uuid.uuid4().hex[:10]}"
    env = process_env(
        _database_url(),
        tmp_path,
        CELERY_BROKER_URL=_redis_url(),
        CELERY_RESULT_BACKEND=_redis_url(),
        TRADE_TIMEOUT_MIN=str(NO_TIME_STOP["TRADE_TIMEOUT_MIN"]),
        EVENTS_JOURNAL=str(tmp_path / "worker-events.jsonl"),
        DRY_RUN="1",
    )
    log = tmp_path / "worker.log"
    cmd = celery("worker", "-P", "prefork", "-c", "1", "-Q", queue, "-n", f"{queue}@%h",
                 "--without-gossip", "--without-mingle", "-l", "INFO")  # fmt: skip
    proc = start(cmd, env, log)
    app = Celery("clock-tick", broker=_redis_url(), backend=_redis_url(), set_as_current=False)
    try:
        deadline = time.monotonic() + 120
        while "ready" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert "ready" in log.read_text(), log.read_text()
        tick, results = stop_at, []
        while tick <= datetime.combine(END, clock_time(15, 58), NY):
            # the beat, one minute boundary at a time, each run by the worker process
            result = app.send_task("trading.clock_tick", args=[tick.isoformat()], queue=queue)
            result.get(timeout=120)  # a task that failed in the worker raises here
            results.append(result)
            tick += timedelta(minutes=1)
    finally:
        kill_group(proc)
        app.close()
    output = log.read_text()
    assert len(results) == 10  # 15:49 .. 15:58
    assert all(f"Task trading.clock_tick[{r.id}] received" in output for r in results)
    for trade in held:
        trade.refresh_from_db()
        assert trade.status == "closed" and trade.exit_reason == "session_close"
        last = Fill.objects.filter(order__trade=trade, side="sell").order_by("ts", "id").last()
        assert last.ts == datetime.combine(END, clock_time(15, 57), NY)
        assert last.price == _flat_fill(_last_close(cut))
    assert all(p.qty == 0 for p in Position.objects.all())
