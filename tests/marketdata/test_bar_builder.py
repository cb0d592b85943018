from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.bar_builder import BuilderResult, MinuteBarBuilder, SecondAgg
from marketdata.clients.symbols import cluster_of
from marketdata.gaps import GapTracker, is_session_minute
from marketdata.types import BarData

START = int(datetime(2025, 9, 19, 13, 30, tzinfo=UTC).timestamp())


def seconds(n: int, symbol: str = "SPY", seed: int = 0) -> list[SecondAgg]:
    rng = random.Random(seed)
    out, price = [], 100.0
    for i in range(n):
        c = round(price + rng.uniform(-0.3, 0.3), 2)
        out.append(
            SecondAgg(
                symbol,
                START + i,
                price,
                max(price, c) + 0.05,
                min(price, c) - 0.05,
                c,
                float(rng.randint(0, 300)),
                round((price + c) / 2, 3),
                10.0,
            )
        )
        price = c
    return out


def values(bars: dict) -> dict:
    """Bars without the provisional flag (which arrival order may change: a minute first
    seen after it was over is provisional)."""
    return {key: replace(bar, provisional=False) for key, bar in bars.items()}


def run(aggs: list[SecondAgg], grace: float = 2.0) -> dict:
    builder = MinuteBarBuilder(grace_sec=grace)
    final: dict = {}
    for agg in aggs:
        result = builder.add(agg)
        for bar in result.closed + result.corrected:
            final[(bar.symbol, bar.ts)] = bar
    for bar in builder.close_all().closed:
        final[(bar.symbol, bar.ts)] = bar
    return final


def test_minute_bar_values():
    aggs = seconds(120)
    bars = run(aggs)
    first = bars[("SPY", datetime.fromtimestamp(START, tz=UTC))]
    minute = aggs[:60]
    assert first.open == minute[0].open and first.close == minute[-1].close
    assert first.high == max(a.high for a in minute) and first.low == min(a.low for a in minute)
    volume = sum(a.volume for a in minute)
    assert first.volume == volume
    assert abs(first.vwap - sum(a.vwap * a.volume for a in minute) / volume) < 1e-9
    assert len(bars) == 2


def test_minute_closes_on_its_second_59():
    builder = MinuteBarBuilder(grace_sec=2.0)
    aggs = seconds(60)
    closed = [b for a in aggs[:59] for b in builder.add(a).closed]
    assert closed == []  # up to 13:30:58 the minute may still get a second
    closed = builder.add(aggs[59]).closed  # 13:30:59 covers the minute up to its end
    assert [(b.symbol, b.ts) for b in closed] == [("SPY", aggs[0].ts)]
    assert closed[0].close == aggs[59].close and closed[0].provisional is False


def test_second_59_closes_only_its_own_symbols_minute():
    builder = MinuteBarBuilder(grace_sec=2.0)
    spy, qqq = seconds(60), seconds(59, symbol="QQQ", seed=4)  # QQQ has no 13:30:59
    for a, b in zip(spy[:59], qqq, strict=True):
        builder.add(a)
        builder.add(b)
    assert [b.symbol for b in builder.add(spy[59]).closed] == ["SPY"]
    assert builder.open and all(key[0] == "QQQ" for key in builder.open)


def test_a_late_58_after_the_59_is_one_correction_of_the_closed_bar():
    aggs = seconds(60)
    held = aggs.pop(58)  # 13:30:58 arrives after 13:30:59 closed the minute
    held = replace(held, high=999.0, volume=7.0)
    builder = MinuteBarBuilder(grace_sec=2.0)
    closed = [b for a in aggs for b in builder.add(a).closed]
    assert len(closed) == 1 and closed[0].high < 999.0
    result = builder.add(held)
    assert result.closed == [] and len(result.corrected) == 1
    fixed = result.corrected[0]
    assert fixed.ts == closed[0].ts and fixed.high == 999.0
    assert fixed.volume == closed[0].volume + 7.0
    assert fixed.close == aggs[-1].close  # the close is still the :59 second's
    assert builder.add(held).corrected == []  # the same second again changes nothing


def test_a_minute_without_its_59_closes_on_the_next_minutes_first_second():
    builder = MinuteBarBuilder(grace_sec=2.0)
    aggs = seconds(61)
    del aggs[59]  # no trade in 13:30:59
    closed = [b for a in aggs[:59] for b in builder.add(a).closed]
    assert closed == []
    closed = builder.add(aggs[59]).closed  # 13:31:00: the feed shows 13:30 is over
    assert [b.ts for b in closed] == [aggs[0].ts]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_quiet_feed_closes_its_minute_after_the_grace_by_its_own_clock():
    clock = FakeClock()
    builder = MinuteBarBuilder(grace_sec=2.0, clock=clock)
    for agg in seconds(59):  # 13:30:00 .. 13:30:58 (no trade in :59), then silence
        builder.add(agg)
    clock.now += 2.9  # feed time 13:31:01.9 (the last second ends at :59), grace not over
    assert builder.close_due().closed == []
    clock.now += 0.2  # 13:31:02.1 > end of minute + 2 s
    assert [b.ts for b in builder.close_due().closed] == [datetime.fromtimestamp(START, tz=UTC)]


def test_a_lagging_feed_keeps_its_seconds_and_its_own_minutes():
    builder = MinuteBarBuilder(grace_sec=2.0, feed_of=cluster_of)
    ahead = seconds(20 * 60 + 1, symbol="SPY")  # the stocks feed is 20 minutes further on
    for agg in ahead:
        builder.add(agg)
    result = BuilderResult()
    for agg in seconds(61, symbol="SPX"):  # indices: lagging, but nothing is late for it
        result.extend(builder.add(agg))
    assert result.late_dropped == 0 and result.heal == []
    assert [(b.symbol, b.ts) for b in result.closed] == [("SPX", ahead[0].ts)]


def test_minutes_that_may_miss_seconds_are_provisional():
    builder = MinuteBarBuilder(grace_sec=2.0, interrupted_at_start=True)
    aggs = sorted(seconds(240) + seconds(240, symbol="QQQ", seed=3), key=lambda a: a.start)
    closed = []
    for agg in (a for a in aggs if a.start < START + 90):  # minute 0: first after connect
        closed += builder.add(agg).closed
    builder.interrupted("")  # the connection drops at 13:31:29 ...
    for agg in (a for a in aggs if a.start >= START + 150):  # ... and is back at 13:32:30
        closed += builder.add(agg).closed
    closed += builder.close_all().closed
    flags = {(b.symbol, int(b.ts.timestamp()) - START): b.provisional for b in closed}
    # 0: first after connect; 60: open at the drop; 120: first after reconnect (for each
    # symbol, not only the first one heard); 180: complete
    want = {0: True, 60: True, 120: True, 180: False}
    assert flags == {(sym, m): p for sym in ("SPY", "QQQ") for m, p in want.items()}


def test_minute_closed_before_its_end_is_provisional():
    builder = MinuteBarBuilder(grace_sec=2.0)
    for agg in seconds(30):
        builder.add(agg)
    (bar,) = builder.close_all().closed  # stopping at 13:30:30
    assert bar.provisional is True


def test_second_later_than_the_retention_names_its_minute_for_healing():
    builder = MinuteBarBuilder(grace_sec=2.0, retain_minutes=2)
    aggs = seconds(5 * 60)
    held = aggs.pop(10)  # 13:30:10 arrives after 13:34:59
    for agg in aggs:
        builder.add(agg)
    result = builder.add(held)
    assert result.late_dropped == 1 and result.corrected == [] and result.closed == []
    assert result.heal == [("SPY", datetime.fromtimestamp(START, tz=UTC))]


def test_index_seconds_without_volume_have_no_vwap():
    agg = SecondAgg("SPX", START, 1.0, 2.0, 0.5, 1.5)
    bar = run([agg])[("SPX", agg.ts)]
    assert bar.volume == 0 and bar.vwap is None


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), dup=st.integers(0, 40), late=st.integers(0, 5))
def test_any_arrival_order_gives_the_same_bars(seed, dup, late):
    aggs = seconds(200, seed=1) + seconds(200, symbol="QQQ", seed=2)
    aggs.sort(key=lambda a: a.start)
    reference = run(aggs)
    rng = random.Random(seed)
    wire = list(aggs)
    for i in range(0, len(wire) - 3, 3):
        block = wire[i : i + 3]
        rng.shuffle(block)
        wire[i : i + 3] = block
    for _ in range(dup):
        wire.insert(rng.randrange(len(wire)), rng.choice(aggs))
    for _ in range(late):  # arrives after its minute closed: a correction rebuilds it
        position = rng.randrange(len(wire) // 2)
        wire.insert(min(len(wire), position + 200), wire.pop(position))
    assert values(run(wire)) == values(reference)


def test_late_second_is_a_correction_not_a_second_close():
    aggs = seconds(130)
    held = aggs.pop(30)
    builder = MinuteBarBuilder(grace_sec=2.0)
    closed = [b for a in aggs for b in builder.add(a).closed]
    result = builder.add(held)
    assert result.closed == [] and len(result.corrected) == 1
    assert result.corrected[0].ts == closed[0].ts and result.corrected[0] != closed[0]


def test_gap_tracker_names_session_minutes_only():
    tracker = GapTracker()
    t = lambda m: datetime.fromtimestamp(START + 60 * m, tz=UTC)  # noqa: E731
    assert tracker.on_bar(BarData("SPY", t(0), 1, 1, 1, 1)) == []
    assert tracker.on_bar(BarData("SPY", t(3), 1, 1, 1, 1)) == [t(1), t(2)]
    assert tracker.on_bar(BarData("SPY", t(2), 1, 1, 1, 1)) == []  # late, not a gap
    assert is_session_minute(datetime(2025, 9, 19, 19, 59, tzinfo=UTC))
    assert not is_session_minute(datetime(2025, 9, 19, 20, 0, tzinfo=UTC))  # 16:00 ET
    assert not is_session_minute(datetime(2025, 12, 25, 15, 0, tzinfo=UTC))  # Christmas
    assert not is_session_minute(datetime(2025, 11, 28, 18, 30, tzinfo=UTC))  # 13:30 early close
