"""Flat-file back-fill against moto's S3 server on 127.0.0.1, gzip CSVs in Polygon's layout."""

from __future__ import annotations

import contextlib
import gzip
import random
from datetime import UTC, date, datetime

import boto3
import pytest
from django.core.management import call_command
from moto.server import ThreadedMotoServer

from marketdata.flatfiles import DATASETS, LineFilter
from marketdata.models import Bar

DAY = date(2025, 9, 19)
OPEN_NS = int(datetime(2025, 9, 19, 13, 30, tzinfo=UTC).timestamp()) * 1_000_000_000
STOCK_HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
INDEX_HEADER = "ticker,open,close,high,low,window_start"


def stock_rows(tickers, minutes, seed):
    rng = random.Random(seed)
    rows = []
    for m in range(minutes):  # the real files are sorted by ticker, then time
        for t in tickers:
            o = round(rng.uniform(100, 500), 2)
            c = round(o + rng.uniform(-1, 1), 2)
            h, lo = round(max(o, c) + 0.3, 2), round(min(o, c) - 0.3, 2)
            rows.append(
                (
                    t,
                    rng.randint(1000, 90000),
                    o,
                    c,
                    h,
                    lo,
                    OPEN_NS + m * 60_000_000_000,
                    rng.randint(10, 900),
                )
            )
    return sorted(rows, key=lambda r: (r[0], r[6]))


def index_rows(tickers, minutes, seed):
    return [(r[0], r[2], r[3], r[4], r[5], r[6]) for r in stock_rows(tickers, minutes, seed)]


def gz_csv(header: str, rows, extra_lines=()) -> bytes:
    text = header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    text += "".join(line + "\n" for line in extra_lines)
    return gzip.compress(text.encode())


@pytest.fixture(scope="module")
def s3_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_server, settings):
    settings.POLYGON_FLATFILES_ENDPOINT = s3_server
    settings.POLYGON_FLATFILES_ACCESS_KEY = "test-key"
    settings.POLYGON_FLATFILES_SECRET_KEY = "test-secret"
    settings.POLYGON_FLATFILES_BUCKET = "flatfiles"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        region_name="us-east-1",
    )
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket="flatfiles")
    for obj in client.list_objects_v2(Bucket="flatfiles").get("Contents", []):
        client.delete_object(Bucket="flatfiles", Key=obj["Key"])
    return client


def stored(symbol: str) -> dict:
    return {
        b.ts: (b.open, b.high, b.low, b.close, b.volume, b.trades)
        for b in Bar.objects.filter(symbol=symbol, source="polygon_flatfile")
    }


def expected(rows, ticker: str, *, index: bool = False) -> dict:
    out = {}
    for r in rows:
        if r[0] != ticker:
            continue
        ts = datetime.fromtimestamp(r[-1 if index else 6] // 1_000_000_000, tz=UTC)
        if index:
            out[ts] = (r[1], r[3], r[4], r[2], 0.0, None)
        else:
            out[ts] = (r[2], r[4], r[5], r[3], float(r[1]), r[7])
    return out


def test_real_key_layout():
    assert DATASETS["stocks"].key(DAY) == "us_stocks_sip/minute_aggs_v1/2025/09/2025-09-19.csv.gz"
    assert DATASETS["indices"].key(DAY) == "us_indices/minute_aggs_v1/2025/09/2025-09-19.csv.gz"
    assert (
        DATASETS["options"].key(DAY) == "us_options_opra/minute_aggs_v1/2025/09/2025-09-19.csv.gz"
    )


@pytest.mark.django_db(transaction=True)
def test_backfill_loads_wanted_symbols_and_rerun_changes_nothing(bucket, capsys):
    stocks = stock_rows(["AAPL", "QQQ", "SPY", "SPYG"], 390, seed=1)
    indices = index_rows(["I:NDX", "I:SPX", "I:VIX"], 390, seed=2)
    bad = [
        "SPY,12,not-a-price,1,1,1,1758288600000000000,3",  # malformed, logged with line no
        "SPY,12,5.0,5.0,4.0,6.0," + str(OPEN_NS + 400 * 60_000_000_000) + ",3",  # high < low
        # passes the cheap screen, refused by PostgreSQL: the file is re-read strictly
        "QQQ,12,1.2.3,5.0,6.0,4.0," + str(OPEN_NS + 401 * 60_000_000_000) + ",3",
    ]
    bucket.put_object(
        Bucket="flatfiles", Key=DATASETS["stocks"].key(DAY), Body=gz_csv(STOCK_HEADER, stocks, bad)
    )
    bucket.put_object(
        Bucket="flatfiles", Key=DATASETS["indices"].key(DAY), Body=gz_csv(INDEX_HEADER, indices)
    )
    # 2025-09-22 (Monday) has no files yet: reported as missing, not an error
    call_command(
        "backfill_flatfiles",
        "--date",
        "2025-09-19",
        "--end",
        "2025-09-22",
        "--symbols",
        "SPX,NDX,SPY,QQQ",
        "--no-progress",
    )
    out = capsys.readouterr().out
    assert "us_stocks_sip/minute_aggs_v1/2025/09/2025-09-22.csv.gz: no such file" in out
    assert "summary: 2 files read, 2 missing, 1560 rows wanted, 1560 inserted/changed, 3 bad" in out

    assert stored("SPY") == expected(stocks, "SPY")
    assert stored("QQQ") == expected(stocks, "QQQ")
    assert stored("SPX") == expected(indices, "I:SPX", index=True)
    assert stored("NDX") == expected(indices, "I:NDX", index=True)
    assert not Bar.objects.filter(symbol__in=["AAPL", "SPYG", "VIX", "I:SPX"]).exists()
    assert Bar.objects.count() == 4 * 390

    before = list(Bar.objects.order_by("id").values_list())
    call_command(
        "backfill_flatfiles",
        "--date",
        "2025-09-19",
        "--symbols",
        "SPX,NDX,SPY,QQQ",
        "--no-progress",
    )
    assert "1560 rows wanted, 0 inserted/changed" in capsys.readouterr().out
    assert list(Bar.objects.order_by("id").values_list()) == before


@pytest.mark.django_db(transaction=True)
def test_changed_file_updates_in_place(bucket, capsys):
    rows = stock_rows(["SPY"], 30, seed=3)
    key = DATASETS["stocks"].key(DAY)
    bucket.put_object(Bucket="flatfiles", Key=key, Body=gz_csv(STOCK_HEADER, rows))
    call_command("backfill_flatfiles", "--date", "2025-09-19", "--symbols", "SPY", "--no-progress")
    corrected = list(rows)
    r = corrected[5]
    corrected[5] = (r[0], r[1] + 1, r[2], r[3], r[4], r[5], r[6], r[7])
    bucket.put_object(Bucket="flatfiles", Key=key, Body=gz_csv(STOCK_HEADER, corrected))
    call_command("backfill_flatfiles", "--date", "2025-09-19", "--symbols", "SPY", "--no-progress")
    assert "30 rows wanted, 1 inserted/changed" in capsys.readouterr().out
    assert stored("SPY") == expected(corrected, "SPY")
    assert Bar.objects.count() == 30


@pytest.mark.django_db(transaction=True)
def test_options_dataset_filters_by_underlying(bucket, capsys):
    rows = stock_rows(
        ["O:QQQ250919C00500000", "O:SPY250919C00600000", "O:SPYG250919P00050000"], 10, seed=4
    )
    bucket.put_object(
        Bucket="flatfiles", Key=DATASETS["options"].key(DAY), Body=gz_csv(STOCK_HEADER, rows)
    )
    call_command(
        "backfill_flatfiles",
        "--date",
        "2025-09-19",
        "--symbols",
        "SPY",
        "--dataset",
        "options",
        "--no-progress",
    )
    assert set(Bar.objects.values_list("symbol", flat=True)) == {"SPY250919C00600000"}
    assert stored("SPY250919C00600000") == expected(rows, "O:SPY250919C00600000")


@pytest.mark.django_db(transaction=True)
def test_import_bars_csv_logs_bad_rows_with_line_numbers(tmp_path, capsys):
    path = tmp_path / "spy.csv"
    path.write_text(
        "ts,open,high,low,close,volume\n"
        "2025-09-19T13:30:00Z,660.1,660.5,659.9,660.2,1000\n"
        "2025-09-19T13:31:00Z,660.2,bad,659.9,660.2,1000\n"
        "not-a-time,660.2,660.6,659.9,660.2,1000\n"
        "2025-09-19T13:33:00Z,660.2,660.6,659.9,660.4,1200\n"
    )
    call_command("import_bars", str(path), "--symbol", "spy")
    captured = capsys.readouterr()
    assert "line 3 skipped" in captured.err and "line 4 skipped" in captured.err
    assert "4 rows read, 2 valid, 2 bad, 2 inserted/changed" in captured.out
    bars = list(Bar.objects.filter(symbol="SPY", source="import").order_by("ts"))
    assert [(b.ts.minute, b.close, b.volume) for b in bars] == [
        (30, 660.2, 1000),
        (33, 660.4, 1200),
    ]
    call_command("import_bars", str(path), "--symbol", "SPY")
    assert "2 valid, 2 bad, 0 inserted/changed" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_import_bars_reads_a_local_flat_file(tmp_path, capsys):
    rows = stock_rows(["QQQ", "SPY"], 20, seed=5)
    path = tmp_path / "2025-09-19.csv.gz"
    path.write_bytes(gz_csv(STOCK_HEADER, rows, ["SPY,1,2", "SPY,1,2,3,4,5,6-7,8"]))
    call_command("import_bars", str(path), "--symbol", "SPY")
    assert "20 wanted, 2 bad, 20 rows inserted/changed" in capsys.readouterr().out
    assert {
        b.ts: (b.open, b.high, b.low, b.close, b.volume, b.trades)
        for b in Bar.objects.filter(symbol="SPY", source="import")
    } == expected(rows, "SPY")


def test_line_filter_rejects_unknown_header_and_shapes():
    with pytest.raises(ValueError, match="unknown"):
        LineFilter(
            b"ticker,open,close,high,low,window_start,bogus\n", symbols=["SPY"], dataset="stocks"
        )
    filt = LineFilter((STOCK_HEADER + "\n").encode(), symbols=["SPY"], dataset="stocks")
    assert filt.wanted(b"SPY,1,2,3,4,1,5,6\n") and not filt.wanted(b"SPYG,1,2,3,4,1,5,6\n")
    assert filt.well_formed(b"SPY,100,1.5,2,2.5,1e-2,1758288600000000000,7\n")
    assert not filt.well_formed(b"SPY,100,1.5,2,2.5,1,17582886000.5,7\n")
    assert not filt.well_formed(b"SPY,100,1.5,2\n")


def test_every_copied_fixture_parses():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "fixtures"
    for path in [*root.glob("polygon/*.json"), *root.glob("tradier/get_*.json")]:
        json.loads(path.read_text())


@pytest.mark.django_db(transaction=True)
def test_nightly_task_loads_the_previous_session_from_flat_files(bucket):
    from autotrader_site.clock import MarketClock
    from marketdata.tasks import backfill_previous_session, previous_session

    assert previous_session(datetime(2025, 9, 22, 12, 0, tzinfo=UTC)) == DAY  # Monday → Friday
    assert previous_session(datetime(2025, 9, 19, 19, 0, tzinfo=UTC)) == date(2025, 9, 18)
    rows = stock_rows(["SPY"], 390, seed=6)
    bucket.put_object(
        Bucket="flatfiles", Key=DATASETS["stocks"].key(DAY), Body=gz_csv(STOCK_HEADER, rows)
    )
    MarketClock.set_replay_time(datetime(2025, 9, 20, 9, 0, tzinfo=UTC))
    try:
        result = backfill_previous_session.apply(kwargs={"symbols": ["SPY"]}).get()
    finally:
        MarketClock.set_replay_time(None)
    assert result == {"day": "2025-09-19", "via": "flatfiles", "rows": 390}
    assert stored("SPY") == expected(rows, "SPY")


@pytest.mark.django_db(transaction=True)
def test_nightly_task_falls_back_to_tradier_timesales(settings):
    import httpx
    import respx

    from autotrader_site.clock import MarketClock
    from marketdata.tasks import backfill_previous_session
    from tests.marketdata.conftest import fixture_text

    settings.POLYGON_FLATFILES_ACCESS_KEY = ""
    settings.POLYGON_API_KEY = ""
    settings.TRADIER_ACCESS_TOKEN = "tok"
    settings.TRADIER_BASE_URL = "http://127.0.0.1:8997/v1/"
    MarketClock.set_replay_time(datetime(2019, 5, 10, 1, 0, tzinfo=UTC))
    try:
        with respx.mock(base_url="http://127.0.0.1:8997/v1/") as mock:
            route = mock.get("markets/timesales").mock(
                return_value=httpx.Response(
                    200, text=fixture_text("tradier/get_time_and_sale.json")
                )
            )
            result = backfill_previous_session.apply(kwargs={"symbols": ["AAPL"]}).get()
    finally:
        MarketClock.set_replay_time(None)
    assert result == {"day": "2019-05-09", "via": "rest", "rows": 3}
    assert route.calls.last.request.url.params["start"] == "2019-05-09 09:30"
    assert Bar.objects.filter(symbol="AAPL", source="rest_backfill").count() == 3


@pytest.mark.django_db(transaction=True)
def test_file_holding_a_minute_twice_falls_back_to_the_upsert(bucket, capsys):
    rows = stock_rows(["SPY"], 50, seed=7)
    twice = [*rows, rows[10]]  # the direct COPY meets a unique violation on this one
    bucket.put_object(
        Bucket="flatfiles", Key=DATASETS["stocks"].key(DAY), Body=gz_csv(STOCK_HEADER, twice)
    )
    call_command("backfill_flatfiles", "--date", "2025-09-19", "--symbols", "SPY", "--no-progress")
    assert "51 wanted, 0 bad, 50 rows inserted/changed" in capsys.readouterr().out
    assert stored("SPY") == expected(rows, "SPY")


@pytest.mark.django_db(transaction=True)
def test_value_refused_by_postgres_rereads_the_object_strictly(bucket, capsys, caplog):
    rows = stock_rows(["SPY"], 40, seed=8)
    sneaky = "SPY,12,1.2.3,5.0,6.0,4.0," + str(OPEN_NS + 100 * 60_000_000_000) + ",3"
    bucket.put_object(
        Bucket="flatfiles",
        Key=DATASETS["stocks"].key(DAY),
        Body=gz_csv(STOCK_HEADER, rows, [sneaky]),
    )
    call_command("backfill_flatfiles", "--date", "2025-09-19", "--symbols", "SPY", "--no-progress")
    assert "40 wanted, 1 bad, 40 rows inserted/changed" in capsys.readouterr().out
    assert "re-reading strictly" in caplog.text  # the object was fetched a second time
    assert "line 42 skipped" in caplog.text
    assert stored("SPY") == expected(rows, "SPY")
