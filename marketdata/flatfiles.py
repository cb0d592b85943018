"""Polygon flat files: minute aggregates as gzip CSVs on S3, streamed into `bars_1m`.

Key layout (bucket `POLYGON_FLATFILES_BUCKET`, default `flatfiles`), one file per day:
    us_stocks_sip/minute_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz
        ticker,volume,open,close,high,low,window_start,transactions
    us_indices/minute_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz
        ticker,open,close,high,low,window_start            (tickers I:SPX; no volume)
    us_options_opra/minute_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz
        as stocks                                          (tickers O:SPY250919C00600000)
`window_start` is epoch nanoseconds. A day of the whole market is millions of lines: it is
decompressed as a stream, filtered line by line (only wanted tickers pass, malformed lines are
logged with their line number), and COPYed into a temp staging table, so memory stays flat.
The staging rows are then upserted into bars_1m (source=polygon_flatfile): a re-run writes 0.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import IO

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from psycopg import errors as pg_errors

from marketdata.clients.symbols import polygon_ticker
from marketdata.models import BarSource

log = logging.getLogger(__name__)

STAGE = "flatfile_stage"
STAGE_COLUMNS = {
    "ticker": "text",
    "volume": "float8",
    "open": "float8",
    "close": "float8",
    "high": "float8",
    "low": "float8",
    "window_start": "bigint",
    "transactions": "bigint",
}
REQUIRED = ("ticker", "open", "close", "high", "low", "window_start")
_NUM = rb"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_INT = rb"\d+"
COPY_CHUNK = 1 << 20  # bytes per COPY write
BAD_LOG_LIMIT = 20


@dataclass(frozen=True)
class Dataset:
    name: str
    prefix: str

    def key(self, day: date) -> str:
        return f"{self.prefix}/{day:%Y}/{day:%m}/{day.isoformat()}.csv.gz"


DATASETS = {
    "stocks": Dataset("stocks", "us_stocks_sip/minute_aggs_v1"),
    "indices": Dataset("indices", "us_indices/minute_aggs_v1"),
    "options": Dataset("options", "us_options_opra/minute_aggs_v1"),
}


def datasets_for(symbols: Iterable[str]) -> list[str]:
    """Which datasets hold these symbols (SPX → indices, SPY → stocks)."""
    names = {"indices" if polygon_ticker(s).startswith("I:") else "stocks" for s in symbols}
    return [n for n in ("stocks", "indices") if n in names]


@dataclass
class IngestResult:
    key: str
    lines: int = 0
    matched: int = 0
    bad: int = 0
    written: int = 0
    missing: bool = False
    bad_lines: list[int] = field(default_factory=list)

    def summary(self) -> str:
        if self.missing:
            return f"{self.key}: no such file (holiday/weekend or not published yet)"
        return (
            f"{self.key}: {self.lines} lines, {self.matched} wanted, {self.bad} bad,"
            f" {self.written} rows inserted/changed"
        )


class LineFilter:
    """Decides from raw bytes whether a CSV line is wanted and well formed."""

    def __init__(self, header: bytes, *, symbols: Iterable[str], dataset: str) -> None:
        self.columns = [c.strip().lower() for c in header.decode().strip().split(",")]
        missing = [c for c in REQUIRED if c not in self.columns]
        unknown = [c for c in self.columns if c not in STAGE_COLUMNS]
        if missing or unknown:
            raise ValueError(
                f"flat-file header {self.columns}: missing {missing}, unknown {unknown}"
            )
        if self.columns[0] != "ticker":
            raise ValueError("flat-file header must start with ticker")
        self.dataset = dataset
        if dataset == "options":
            roots = "|".join(re.escape(s.upper()) for s in symbols)
            self.option_root = re.compile(rf"^O:(?:{roots})\d".encode())
            self.tickers: frozenset[bytes] = frozenset()
        else:
            self.option_root = None
            self.tickers = frozenset(polygon_ticker(s).encode() for s in symbols)
        parts = []
        for name in self.columns[1:]:
            kind = STAGE_COLUMNS[name]
            parts.append(_INT if kind == "bigint" else _NUM)
        self.shape = re.compile(rb"[^,\s]+," + rb",".join(parts) + rb"\r?\n?")

    def wanted(self, line: bytes) -> bool:
        ticker = line[: line.find(b",")]
        if self.option_root is not None:
            return self.option_root.match(ticker) is not None
        return ticker in self.tickers

    def well_formed(self, line: bytes) -> bool:
        return self.shape.fullmatch(line) is not None


def _ensure_stage(cursor) -> None:
    cols = ", ".join(f"{name} {kind}" for name, kind in STAGE_COLUMNS.items())
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({cols}) ON COMMIT DELETE ROWS")


def _select_sql(*, distinct: bool) -> str:
    dedupe = "DISTINCT ON (ticker, window_start)" if distinct else ""
    order = (
        " ORDER BY ticker, window_start, open, high, low, close, volume, transactions"
        if distinct
        else ""
    )
    return (
        f"SELECT {dedupe} regexp_replace(ticker, '^[IO]:', '') AS symbol,"
        " to_timestamp((window_start / 1000000000)::float8) AS ts,"
        " open, high, low, close, coalesce(volume, 0) AS volume, NULL::float8 AS vwap,"
        " transactions::integer AS trades, %(source)s::varchar AS source"
        f" FROM {STAGE}"
        " WHERE high >= low AND low > 0 AND high >= greatest(open, close)"
        " AND low <= least(open, close)"
        f"{order}"
    )


def _merge(cursor, *, source: str) -> int:
    """Stage → bars_1m. First loads take a plain INSERT (inside a savepoint); anything
    overlapping stored rows takes the upsert that leaves identical rows untouched."""
    cursor.execute(
        f"SELECT min(window_start), max(window_start), array_agg(DISTINCT ticker) FROM {STAGE}"
    )
    low, high, tickers = cursor.fetchone()
    if low is None:
        return 0
    symbols = [re.sub(r"^[IO]:", "", t) for t in tickers]
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM bars_1m WHERE source = %s AND symbol = ANY(%s)"
        " AND ts BETWEEN to_timestamp(%s::float8) AND to_timestamp(%s::float8))",
        [source, symbols, low // 1_000_000_000, high // 1_000_000_000],
    )
    columns = "symbol, ts, open, high, low, close, volume, vwap, trades, source"
    if not cursor.fetchone()[0]:
        try:
            with transaction.atomic():
                cursor.execute(
                    f"INSERT INTO bars_1m ({columns}) {_select_sql(distinct=False)}",
                    {"source": source},
                )
                return cursor.rowcount
        except (pg_errors.UniqueViolation, IntegrityError):  # Django wraps it, or not
            log.info("flat file holds a minute twice (or a concurrent load); upserting")
    updates = ("open", "high", "low", "close", "volume", "vwap", "trades")
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in updates)
    current = ", ".join(f"bars_1m.{c}" for c in updates)
    incoming = ", ".join(f"EXCLUDED.{c}" for c in updates)
    cursor.execute(
        f"INSERT INTO bars_1m ({columns}) {_select_sql(distinct=True)}"
        f" ON CONFLICT (symbol, ts, source) DO UPDATE SET {sets}"
        f" WHERE ({current}) IS DISTINCT FROM ({incoming})",
        {"source": source},
    )
    return cursor.rowcount


def _lines(raw: IO[bytes], gzipped: bool) -> IO[bytes]:
    if gzipped:
        return io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), buffer_size=1 << 20)
    return raw


def _pump(
    reader: IO[bytes],
    filt: LineFilter,
    result: IngestResult,
    write: Callable[[bytes], None],
) -> None:
    """Filter wanted, well-formed lines into `write` in ~1 MiB chunks."""
    wanted, well_formed = filt.wanted, filt.well_formed
    chunk: list[bytes] = []
    size = 0
    line_no = 1
    for line in reader:
        line_no += 1
        if not wanted(line):
            continue
        if not well_formed(line):
            result.bad += 1
            if result.bad <= BAD_LOG_LIMIT:
                result.bad_lines.append(line_no)
                log.warning("%s line %d skipped: malformed %r", result.key, line_no, line[:120])
            continue
        row = line if line.endswith(b"\n") else line + b"\n"
        chunk.append(row)
        size += len(row)
        if size >= COPY_CHUNK:
            write(b"".join(chunk))
            result.matched += len(chunk)
            chunk, size = [], 0
    if chunk:
        write(b"".join(chunk))
        result.matched += len(chunk)
    result.lines = line_no - 1


def ingest_stream(
    raw: IO[bytes],
    *,
    key: str,
    symbols: Iterable[str],
    dataset: str,
    source: str = BarSource.FLATFILE,
    gzipped: bool = True,
) -> IngestResult:
    """Stream one flat file (a binary file object) into bars_1m in one transaction."""
    symbols = [s.upper() for s in symbols]
    result = IngestResult(key=key)
    reader = _lines(raw, gzipped)
    header = reader.readline()
    if not header:
        log.warning("%s is empty", key)
        return result
    filt = LineFilter(header, symbols=symbols, dataset=dataset)
    with transaction.atomic(), connection.cursor() as cursor:
        _ensure_stage(cursor)
        cursor.execute(f"TRUNCATE {STAGE}")
        with cursor.copy(
            f"COPY {STAGE} ({', '.join(filt.columns)}) FROM STDIN WITH (FORMAT csv)"
        ) as copy:
            _pump(reader, filt, result, copy.write)
        written = _merge(cursor, source=source)
        cursor.execute(
            f"SELECT count(*) FROM {STAGE} WHERE NOT (high >= low AND low > 0"
            " AND high >= greatest(open, close) AND low <= least(open, close))"
        )
        inconsistent = cursor.fetchone()[0]
        if inconsistent:
            log.warning("%s: %d rows with inconsistent o/h/l/c skipped", key, inconsistent)
            result.bad += inconsistent
            result.matched -= inconsistent
        result.written = written
        cursor.execute(f"TRUNCATE {STAGE}")
    return result


def s3_client():
    """boto3 S3 client for Polygon's flat-file endpoint (credentials from settings)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.POLYGON_FLATFILES_ENDPOINT,
        aws_access_key_id=settings.POLYGON_FLATFILES_ACCESS_KEY,
        aws_secret_access_key=settings.POLYGON_FLATFILES_SECRET_KEY,
        config=Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "adaptive"}),
    )


def backfill_day(
    *,
    day: date,
    dataset: str,
    symbols: list[str],
    client=None,
    bucket: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """One dataset-day from S3 into bars_1m. A missing object (holiday, weekend) is reported,
    not raised."""
    from botocore.exceptions import ClientError

    client = client or s3_client()
    bucket = bucket or settings.POLYGON_FLATFILES_BUCKET
    key = DATASETS[dataset].key(day)
    try:
        obj = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchKey", "404", "NotFound"}:
            return IngestResult(key=key, missing=True)
        raise
    body = obj["Body"]
    try:
        return ingest_stream(
            _Counting(body, progress) if progress else body,
            key=key,
            symbols=symbols,
            dataset=dataset,
        )
    finally:
        body.close()


class _Counting(io.RawIOBase):
    """Reports compressed bytes read (the progress bar) while passing reads through."""

    def __init__(self, inner, report: Callable[[int], None]) -> None:
        self.inner = inner
        self.report = report

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        self.report(len(data))
        return len(data)


def days_between(start: date, end: date) -> Iterator[date]:
    """Weekdays in [start, end] (holidays come back as missing files)."""
    day = start
    while day <= end:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)
