"""Ingest benchmark: Polygon flat-file rows → bars_1m through the production path, against a
plain COPY of the same rows into an identical table, in the same run.

    DATABASE_URL=postgres://... python benchmarks/bench_ingest.py [--rows 1000000]

The flat file is a gzip CSV in the stocks layout holding N wanted rows (4 symbols) plus 25%
unwanted tickers, so the filter does real work. Timed path: gunzip stream → line filter →
COPY into the temp staging table → INSERT into bars_1m (fresh range). "raw" is `COPY bars_1m_raw
FROM STDIN` of the already-rendered rows (no parsing, no filtering) into a `LIKE bars_1m
INCLUDING ALL` clone (same indexes). Also measured: a re-run of the same file (upsert over
existing rows, nothing changes), the BarData path (`bars_upsert`), and the peak RSS of a child
process running the real S3 back-fill (boto3 against moto's server on 127.0.0.1) of the
N-row file vs a file 10x smaller (flat memory → about equal).
Tables live in a throw-away schema, dropped at the end. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")

SYMBOLS = ["SPY", "QQQ", "IWM", "DIA"]
NOISE = ["AAPL", "MSFT", "SPYG", "QQQM"]
HEADER = b"ticker,volume,open,close,high,low,window_start,transactions\n"
START_NS = int(datetime(2020, 1, 2, 14, 30, tzinfo=UTC).timestamp()) * 1_000_000_000


def make_flatfile(path: Path, rows: int, seed: int = 7) -> list[bytes]:
    """Write the gzip flat file; return the wanted rows rendered for a bars_1m COPY."""
    rng = random.Random(seed)
    per_symbol = rows // len(SYMBOLS)
    raw_rows: list[bytes] = []
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(HEADER)
        for ticker in sorted(SYMBOLS + NOISE):
            wanted = ticker in SYMBOLS
            count = per_symbol if wanted else per_symbol // 4
            price = rng.uniform(50, 500)
            lines = []
            for i in range(count):
                o = round(price, 2)
                c = round(o + rng.uniform(-0.5, 0.5), 2)
                h = round(max(o, c) + 0.1, 2)
                lo = round(min(o, c) - 0.1, 2)
                v = rng.randint(100, 90_000)
                n = rng.randint(1, 900)
                ws = START_NS + i * 60_000_000_000
                lines.append(f"{ticker},{v},{o},{c},{h},{lo},{ws},{n}\n".encode())
                if wanted:
                    ts = datetime.fromtimestamp(ws // 1_000_000_000, tz=UTC).isoformat()
                    raw_rows.append(
                        f"{ticker}\t{ts}\t{o}\t{h}\t{lo}\t{c}\t{float(v)}\t\\N\t{n}\t"
                        "polygon_flatfile\n".encode()
                    )
                price = max(5.0, c)
            out.write(b"".join(lines))
    return raw_rows


def setup_schema(name: str) -> None:
    from django.db import connection

    from marketdata.models import Bar

    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        cursor.execute(f"CREATE SCHEMA {name}")
        cursor.execute(f"SET search_path TO {name}, public")
    with connection.schema_editor() as editor:
        editor.create_model(Bar)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX ON {name}.bars_1m USING brin (ts)")
        cursor.execute(f"CREATE TABLE {name}.bars_1m_raw (LIKE {name}.bars_1m INCLUDING ALL)")


def drop_schema(name: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        cursor.execute("SET search_path TO public")


def truncate(schema: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {schema}.bars_1m, {schema}.bars_1m_raw")


def checkpoint() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def time_raw_copy(schema: str, raw_rows: list[bytes]) -> float:
    from django.db import connection, transaction

    columns = "symbol, ts, open, high, low, close, volume, vwap, trades, source"
    started = time.perf_counter()
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.copy(f"COPY {schema}.bars_1m_raw ({columns}) FROM STDIN") as copy,
    ):
        for i in range(0, len(raw_rows), 20_000):
            copy.write(b"".join(raw_rows[i : i + 20_000]))
    return time.perf_counter() - started


def time_ingest(path: Path) -> tuple[float, object]:
    from marketdata.flatfiles import ingest_stream

    started = time.perf_counter()
    with open(path, "rb") as raw:
        result = ingest_stream(raw, key=path.name, symbols=SYMBOLS, dataset="stocks")
    return time.perf_counter() - started, result


def time_bars_upsert(count: int) -> float:
    from marketdata.services import bars_upsert
    from marketdata.types import BarData

    base = datetime(2030, 1, 2, 14, 30, tzinfo=UTC).timestamp()
    bars = [
        BarData(
            "ZZZ",
            datetime.fromtimestamp(base + 60 * i, tz=UTC),
            1.0,
            2.0,
            0.5,
            1.5,
            10.0,
            1.2,
            3,
            "stream",
        )
        for i in range(count)
    ]
    started = time.perf_counter()
    bars_upsert(bars=bars)
    return time.perf_counter() - started


def child_backfill(endpoint: str, key: str, schema: str) -> None:
    """Run in a subprocess: the real S3 back-fill of one object (`backfill_day`, as the
    command does); prints peak RSS (MiB). key "-" only loads Django (the baseline)."""
    import django

    django.setup()
    import boto3

    from marketdata.flatfiles import backfill_day

    result = None
    if key != "-":
        setup_schema(schema)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="k",
            aws_secret_access_key="s",
            region_name="us-east-1",
        )
        day = datetime.strptime(key.rsplit("/", 1)[1][:10], "%Y-%m-%d").date()
        result = backfill_day(
            day=day, dataset="stocks", symbols=SYMBOLS, client=client, bucket="flatfiles"
        )
        drop_schema(schema)
    rss_mib = high_water_mib()
    rows = result.matched if result else 0
    print(json.dumps({"rows": rows, "peak_rss_mib": round(rss_mib, 1)}))


def high_water_mib() -> float:
    """This process's peak RSS (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(files: dict[str, tuple[str, Path | None]]) -> dict[str, dict]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="flatfiles")
    out = {}
    try:
        for label, (day, path) in files.items():
            key = "-"
            if path is not None:
                key = f"us_stocks_sip/minute_aggs_v1/2020/01/{day}.csv.gz"
                client.upload_file(str(path), "flatfiles", key)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", endpoint, key, f"bench_rss_{os.getpid()}"],
                capture_output=True,
                text=True,
                check=True,
            )
            out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        child_backfill(*args.child)
        return 0

    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        print(json.dumps({"name": "ingest", "error": "needs PostgreSQL (DATABASE_URL)"}))
        return 1
    schema = f"bench_ingest_{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.csv.gz"
        small = Path(tmp) / "small.csv.gz"
        raw_rows = make_flatfile(big, args.rows)
        make_flatfile(small, args.rows // 10)
        n = len(raw_rows)
        setup_schema(schema)
        try:
            raws, ingests = [], []
            for _ in range(args.repeat):  # alternate, fresh tables, median of each
                truncate(schema)
                checkpoint()
                raws.append(time_raw_copy(schema, raw_rows))
                checkpoint()
                sec, result = time_ingest(big)
                assert result.matched == n and result.written == n, result
                ingests.append(sec)
            raw_sec, ingest_sec = statistics.median(raws), statistics.median(ingests)
            checkpoint()
            rerun_sec, rerun = time_ingest(big)  # rows stored: the upsert path
            assert rerun.written == 0, rerun
            upsert_n = min(n, 200_000)
            upsert_sec = time_bars_upsert(upsert_n)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT count(*) FROM {schema}.bars_1m WHERE symbol <> 'ZZZ'")
                stored = cursor.fetchone()[0]
            assert stored == n, stored
        finally:
            drop_schema(schema)
        del raw_rows
        rss = peak_rss(
            {"baseline": ("", None), "full": ("2020-01-02", big), "tenth": ("2020-01-03", small)}
        )
        file_mib = big.stat().st_size / 2**20
    figures = {
        "name": "ingest",
        "rows": n,
        "rows_per_s": round(n / ingest_sec),
        "raw_copy_rows_per_s": round(n / raw_sec),
        "ratio": round(raw_sec / ingest_sec, 3),
        "ingest_sec": round(ingest_sec, 3),
        "raw_copy_sec": round(raw_sec, 3),
        "repeats": args.repeat,
        "ingest_sec_each": [round(x, 3) for x in ingests],
        "raw_copy_sec_each": [round(x, 3) for x in raws],
        "rerun_unchanged_rows_per_s": round(n / rerun_sec),
        "bars_upsert_rows_per_s": round(upsert_n / upsert_sec),
        "file_lines": result.lines,
        "file_gz_mib": round(file_mib, 1),
        "backfill_peak_rss_mib": rss["full"]["peak_rss_mib"],
        "backfill_rows": rss["full"]["rows"],
        "backfill_peak_rss_tenth_file_mib": rss["tenth"]["peak_rss_mib"],
        "django_only_peak_rss_mib": rss["baseline"]["peak_rss_mib"],
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
