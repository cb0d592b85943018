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
import queue
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import IO

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from psycopg import errors as pg_errors
from psycopg.copy import QueuedLibpqWriter

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
        # the cheap screen of a whole chunk: field count and characters, not number syntax
        loose = [
            _INT if STAGE_COLUMNS[n] == "bigint" else rb"[-+.eE0-9]+" for n in self.columns[1:]
        ]
        self.screen = re.compile(rb"(?:[^,\s]+," + rb",".join(loose) + rb"\r?\n)*")
        self.prefixes = tuple(t + b"," for t in self.tickers)

    def wanted(self, line: bytes) -> bool:
        if self.option_root is not None:
            return self.option_root.match(line) is not None
        return line.startswith(self.prefixes)

    def well_formed(self, line: bytes) -> bool:
        return self.shape.fullmatch(line) is not None


def _ensure_stage(cursor) -> None:
    cols = ", ".join(f"{name} {kind}" for name, kind in STAGE_COLUMNS.items())
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({cols}) ON COMMIT DELETE ROWS")


CONSISTENT = (
    "high >= low AND low > 0 AND high >= greatest(open, close) AND low <= least(open, close)"
)


def _select_sql(*, dataset: str, distinct: bool) -> str:
    # stocks tickers are our symbols; indices (I:SPX) and options (O:SPY…) lose the prefix
    symbol = "ticker" if dataset == "stocks" else "substr(ticker, 3)"
    dedupe = "DISTINCT ON (ticker, window_start)" if distinct else ""
    order = (
        " ORDER BY ticker, window_start, open, high, low, close, volume, transactions"
        if distinct
        else ""
    )
    return (
        f"SELECT {dedupe} {symbol} AS symbol,"
        " to_timestamp(window_start / 1000000000) AS ts,"
        " open, high, low, close, coalesce(volume, 0) AS volume, NULL::float8 AS vwap,"
        " transactions::integer AS trades, %(source)s::varchar AS source"
        f" FROM {STAGE} WHERE {CONSISTENT}{order}"
    )


def _stored_symbols(cursor, filt: LineFilter) -> list[str]:
    """Our symbols of the staged rows: known from the filter, except for options."""
    if filt.option_root is None:
        return [t.decode().removeprefix("I:") for t in filt.tickers]
    cursor.execute(f"SELECT DISTINCT substr(ticker, 3) FROM {STAGE}")
    return [row[0] for row in cursor.fetchall()]


def _merge(cursor, *, filt: LineFilter, source: str, staged: int) -> tuple[int, int]:
    """Stage → bars_1m; returns (rows inserted or changed, inconsistent rows skipped).
    First loads take a plain INSERT (inside a savepoint); anything overlapping stored rows
    takes the upsert that leaves identical rows untouched."""
    cursor.execute(f"SELECT min(window_start), max(window_start) FROM {STAGE}")
    low, high = cursor.fetchone()
    if low is None:
        return 0, 0
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM bars_1m WHERE source = %s AND symbol = ANY(%s)"
        " AND ts BETWEEN to_timestamp(%s) AND to_timestamp(%s))",
        [source, _stored_symbols(cursor, filt), low // 1_000_000_000, high // 1_000_000_000],
    )
    columns = "symbol, ts, open, high, low, close, volume, vwap, trades, source"
    params = {"source": source}
    if not cursor.fetchone()[0]:
        try:
            with transaction.atomic():
                sql = _select_sql(dataset=filt.dataset, distinct=False)
                cursor.execute(f"INSERT INTO bars_1m ({columns}) {sql}", params)
                inserted = cursor.rowcount
                return inserted, staged - inserted
        except (pg_errors.UniqueViolation, IntegrityError):  # Django wraps it, or not
            log.info("flat file holds a minute twice (or a concurrent load); upserting")
    updates = ("open", "high", "low", "close", "volume", "vwap", "trades")
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in updates)
    current = ", ".join(f"bars_1m.{c}" for c in updates)
    incoming = ", ".join(f"EXCLUDED.{c}" for c in updates)
    cursor.execute(
        f"INSERT INTO bars_1m ({columns}) {_select_sql(dataset=filt.dataset, distinct=True)}"
        f" ON CONFLICT (symbol, ts, source) DO UPDATE SET {sets}"
        f" WHERE ({current}) IS DISTINCT FROM ({incoming})",
        params,
    )
    changed = cursor.rowcount
    cursor.execute(f"SELECT count(*) FROM {STAGE} WHERE NOT ({CONSISTENT})")
    return changed, cursor.fetchone()[0]


class _BoundedQueuedWriter(QueuedLibpqWriter):
    """psycopg's threaded COPY writer with a short queue (64 buffers of <= 128 KiB), so a slow
    server makes the reader wait instead of the queue growing toward psycopg's 1024."""

    def __init__(self, cursor) -> None:
        super().__init__(cursor)
        self._queue = queue.Queue(maxsize=64)


def _lines(raw: IO[bytes], gzipped: bool) -> IO[bytes]:
    if gzipped:
        return io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), buffer_size=1 << 20)
    return raw


def _pump(
    reader: IO[bytes],
    filt: LineFilter,
    result: IngestResult,
    write: Callable[[bytes], None],
    *,
    strict: bool = False,
) -> None:
    """Write wanted, well-formed lines to `write` in ~1 MiB chunks. Each chunk gets one cheap
    screen (field count, characters); a chunk failing it — or every chunk when `strict` — is
    checked line by line with the exact number syntax, naming and dropping bad lines."""
    wanted = filt.wanted
    lines: list[bytes] = []
    numbers: list[int] = []
    size = 0
    line_no = 1
    for line_no, line in enumerate(reader, start=2):  # noqa: B007 (read after the loop)
        if wanted(line):
            lines.append(line)
            numbers.append(line_no)
            size += len(line)
            if size >= COPY_CHUNK:
                _flush_chunk(lines, numbers, filt, result, write, strict)
                lines, numbers, size = [], [], 0
    if lines:
        if not lines[-1].endswith(b"\n"):
            lines[-1] += b"\n"
        _flush_chunk(lines, numbers, filt, result, write, strict)
    result.lines = line_no - 1


def _flush_chunk(
    lines: list[bytes],
    numbers: list[int],
    filt: LineFilter,
    result: IngestResult,
    write: Callable[[bytes], None],
    strict: bool,
) -> None:
    block = b"".join(lines)
    if strict or filt.screen.fullmatch(block) is None:
        good = []
        for number, line in zip(numbers, lines, strict=True):
            if filt.well_formed(line):
                good.append(line)
                continue
            result.bad += 1
            if result.bad <= BAD_LOG_LIMIT:
                result.bad_lines.append(number)
                log.warning("%s line %d skipped: malformed %r", result.key, number, line[:120])
        lines = good
        block = b"".join(good)
    write(block)
    result.matched += len(lines)


def ingest_stream(
    raw: IO[bytes],
    *,
    key: str,
    symbols: Iterable[str],
    dataset: str,
    source: str = BarSource.FLATFILE,
    gzipped: bool = True,
    reopen: Callable[[], IO[bytes]] | None = None,
    strict: bool = False,
) -> IngestResult:
    """Stream one flat file (a binary file object) into bars_1m in one transaction.

    Should a value pass the cheap screen yet not parse in PostgreSQL (say `1.2.3`), the file
    is read again from `reopen()` with every line checked exactly; without `reopen` that
    raises ValueError naming the file."""
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
        try:
            with (
                transaction.atomic(),  # savepoint: a refused COPY leaves the rest usable
                cursor.copy(
                    f"COPY {STAGE} ({', '.join(filt.columns)}) FROM STDIN WITH (FORMAT csv)",
                    writer=_BoundedQueuedWriter(cursor.cursor),  # sends while we filter
                ) as copy,
            ):
                _pump(reader, filt, result, copy.write, strict=strict)
        except (pg_errors.DataError, DataError) as exc:
            if strict or reopen is None:
                raise ValueError(f"{key}: PostgreSQL refused a value: {exc}") from exc
            log.warning("%s: a value slipped past the screen (%s); re-reading strictly", key, exc)
            return ingest_stream(
                reopen(),
                key=key,
                symbols=symbols,
                dataset=dataset,
                source=source,
                gzipped=gzipped,
                strict=True,
            )
        written, inconsistent = _merge(cursor, filt=filt, source=source, staged=result.matched)
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
            reopen=lambda: client.get_object(Bucket=bucket, Key=key)["Body"],
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
