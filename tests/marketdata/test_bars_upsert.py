from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from marketdata.models import Bar, Tick
from marketdata.services import bars_upsert, ticks_insert
from marketdata.types import BarData

T0 = datetime(2025, 9, 19, 13, 30, tzinfo=UTC)


def bars(n: int, *, symbol: str = "SPY", source: str = "stream", shift: float = 0.0):
    return [
        BarData(
            symbol,
            T0 + timedelta(minutes=i),
            100 + i,
            101 + i,
            99 + i,
            100.5 + i + shift,
            1000 + i,
            100.2 + i,
            10 + i,
            source,
        )
        for i in range(n)
    ]


@pytest.mark.django_db(transaction=True)
def test_first_load_then_identical_rerun_writes_nothing():
    assert bars_upsert(bars=bars(50)) == 50
    assert bars_upsert(bars=bars(50)) == 0
    assert Bar.objects.count() == 50
    row = Bar.objects.get(symbol="SPY", ts=T0 + timedelta(minutes=7))
    assert (row.open, row.high, row.low, row.close, row.volume, row.vwap, row.trades) == (
        107,
        108,
        106,
        107.5,
        1007,
        107.2,
        17,
    )


@pytest.mark.django_db(transaction=True)
def test_overlap_updates_changed_rows_only():
    bars_upsert(bars=bars(10))
    changed = bars(12, shift=0.25)[5:]  # 5 changed existing rows + 2 new
    assert bars_upsert(bars=changed) == 7
    assert Bar.objects.count() == 12
    assert Bar.objects.get(ts=T0 + timedelta(minutes=6)).close == 106.75
    assert Bar.objects.get(ts=T0 + timedelta(minutes=2)).close == 102.5


@pytest.mark.django_db(transaction=True)
def test_duplicates_inside_one_batch_keep_the_last():
    batch = bars(3)
    late = replace(batch[1], close=555.0, high=556.0)
    assert bars_upsert(bars=[*batch, late]) == 3
    assert Bar.objects.count() == 3
    assert Bar.objects.get(ts=T0 + timedelta(minutes=1)).close == 555.0


@pytest.mark.django_db(transaction=True)
def test_sources_do_not_overwrite_each_other():
    bars_upsert(bars=bars(3, source="stream"))
    bars_upsert(bars=bars(3, source="rest_backfill", shift=1))
    assert Bar.objects.filter(source="stream").count() == 3
    assert Bar.objects.filter(source="rest_backfill").count() == 3


@pytest.mark.django_db
def test_naive_timestamp_is_refused():
    with pytest.raises(ValueError, match="naive"):
        bars_upsert(bars=[replace(bars(1)[0], ts=datetime(2025, 1, 2, 14, 30))])


@pytest.mark.django_db(transaction=True)
def test_ticks_insert_upserts_by_key():
    rows = [
        ("SPY", T0 + timedelta(seconds=i), 1, 2, 0.5, 1.5, 10, 1.2, 5, "stream") for i in range(5)
    ]
    assert ticks_insert(ticks=rows) == 5
    assert ticks_insert(ticks=rows[:2] + [("SPY", T0, 1, 3, 0.5, 2.5, 11, 1.3, 5, "stream")]) == 1
    assert Tick.objects.count() == 5
    assert Tick.objects.get(ts=T0).close == 2.5


@pytest.mark.django_db
def test_heal_replaces_the_provisional_stream_row_with_the_providers_bar():
    from marketdata.selectors import bars_as_data
    from marketdata.services import bars_heal

    stream = [replace(b, provisional=(i == 1)) for i, b in enumerate(bars(3))]
    bars_upsert(bars=stream)
    assert Bar.objects.get(ts=T0 + timedelta(minutes=1)).provisional is True
    provider = replace(bars(3, source="rest_backfill", shift=0.25)[1], provisional=True)
    assert bars_heal(bars=[provider]) == 1
    assert bars_heal(bars=[provider]) == 0  # idempotent: nothing changes the second time
    rows = Bar.objects.filter(ts=T0 + timedelta(minutes=1))
    assert [(r.source, r.close, r.provisional) for r in rows] == [("rest_backfill", 101.75, False)]
    assert Bar.objects.count() == 3  # the other minutes keep their stream rows
    got = bars_as_data(symbol="SPY")
    assert [b.close for b in got] == [100.5, 101.75, 102.5]


@pytest.mark.django_db
def test_readers_prefer_a_final_bar_to_a_provisional_one_of_the_same_minute():
    from marketdata.selectors import bars_as_data

    final = bars(1, source="polygon_flatfile", shift=1.0)  # stored first ...
    provisional = [replace(b, provisional=True) for b in bars(1)]
    bars_upsert(bars=provisional)  # ... or second: the final one is what readers see
    bars_upsert(bars=final)
    (bar,) = bars_as_data(symbol="SPY")
    assert (bar.source, bar.close, bar.provisional) == ("polygon_flatfile", 101.5, False)
    (latest,) = bars_as_data(symbol="SPY", limit=1)
    assert latest.source == "polygon_flatfile"
