"""Files whose times carry no offset are refused unless their timezone is given: read as UTC,
New York times would trade pre-market bars as the open."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from analytics.bars import bars_frame_from_file
from marketdata.models import Bar
from marketdata.replay import read_bars_file
from marketdata.timestamps import NaiveTimestamps, zone

HEADER = "ts,open,high,low,close,volume\n"
NAIVE = (
    HEADER
    + "2025-01-15 09:30:00,100,101,99,100.5,1000\n2025-01-15 09:31:00,100.5,101,100,101,900\n"
)
JULY = HEADER + "2025-07-15T09:30:00,100,101,99,100.5,1000\n"
AWARE = HEADER + "2025-01-15T14:30:00Z,100,101,99,100.5,1000\n2025-01-15T09:31:00-05:00,1,1,1,1,1\n"
OPEN_JAN = datetime(2025, 1, 15, 14, 30, tzinfo=UTC)  # 09:30 EST


@pytest.fixture
def write(tmp_path):
    def _write(text: str, name: str = "bars.csv"):
        path = tmp_path / name
        if name.endswith(".parquet"):
            pd.read_csv(StringIO(text), dtype={"ts": str}).to_parquet(path)
        else:
            path.write_text(text)
        return path

    return _write


@pytest.mark.parametrize("name", ["bars.csv", "bars.parquet"])
def test_replay_reader_refuses_naive_times_without_tz(write, name):
    path = write(NAIVE, name)
    with pytest.raises(NaiveTimestamps, match="--tz"):
        list(read_bars_file(path, symbol="SPY"))


@pytest.mark.parametrize("name", ["bars.csv", "bars.parquet"])
def test_replay_reader_localises_naive_times_in_the_given_zone(write, name):
    bars = list(read_bars_file(write(NAIVE, name), symbol="SPY", tz=zone("America/New_York")))
    assert [b.ts for b in bars] == [OPEN_JAN, datetime(2025, 1, 15, 14, 31, tzinfo=UTC)]
    # summer: EDT is UTC-4
    (july,) = read_bars_file(write(JULY, name), symbol="SPY", tz=zone("America/New_York"))
    assert july.ts == datetime(2025, 7, 15, 13, 30, tzinfo=UTC)


def test_times_with_an_offset_need_no_tz_and_ignore_it(write):
    path = write(AWARE)
    plain = [b.ts for b in read_bars_file(path, symbol="SPY")]
    with_tz = [b.ts for b in read_bars_file(path, symbol="SPY", tz=zone("Asia/Tokyo"))]
    assert plain == with_tz == [OPEN_JAN, datetime(2025, 1, 15, 14, 31, tzinfo=UTC)]


def test_a_bad_zone_name_is_a_clear_error():
    with pytest.raises(ValueError, match="not a timezone"):
        zone("New_York")


@pytest.mark.parametrize("name", ["bars.csv", "bars.parquet"])
def test_backtest_frames_refuse_naive_times_and_accept_them_with_tz(write, name):
    path = write(NAIVE, name)
    with pytest.raises(NaiveTimestamps):
        bars_frame_from_file(path)
    frame = bars_frame_from_file(path, tz="America/New_York")
    assert list(frame.index) == [pd.Timestamp(OPEN_JAN), pd.Timestamp("2025-01-15T14:31Z")]
    assert frame["regular"].all()  # 09:30 and 09:31 New York are inside the session


def test_backtest_command_refuses_naive_csv_without_tz(write):
    path = write(NAIVE)
    with pytest.raises(CommandError, match="--tz"):
        call_command("backtest", "--data", str(path), "--symbol", "SPY", "--no-progress")


@pytest.mark.django_db
def test_import_bars_refuses_naive_times_and_stores_them_with_tz(write):
    path = write(NAIVE)
    with pytest.raises(CommandError, match="no timezone"):
        call_command("import_bars", str(path), "--symbol", "SPY", stdout=StringIO())
    assert not Bar.objects.exists()
    call_command(
        "import_bars", str(path), "--symbol", "SPY", "--tz", "America/New_York", stdout=StringIO()
    )
    assert sorted(Bar.objects.values_list("ts", flat=True)) == [
        OPEN_JAN,
        datetime(2025, 1, 15, 14, 31, tzinfo=UTC),
    ]


@pytest.mark.django_db
def test_import_bars_reads_parquet_with_tz(write):
    path = write(NAIVE, "bars.parquet")
    out = StringIO()
    call_command(
        "import_bars", str(path), "--symbol", "SPY", "--tz", "America/New_York", stdout=out
    )
    assert Bar.objects.filter(symbol="SPY", ts=OPEN_JAN).exists()
    assert "2 valid rows" in out.getvalue()
