"""Load a local CSV of 1-minute bars for one symbol into bars_1m."""

from __future__ import annotations

import contextlib
import csv
import gzip
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from marketdata.clients.symbols import is_index
from marketdata.flatfiles import ingest_stream
from marketdata.models import BarSource
from marketdata.replay import CSV_COLUMNS, BadRow, parse_bar_row, read_bars_parquet
from marketdata.services import bars_upsert
from marketdata.timestamps import zone

CHUNK = 50_000


class Command(BaseCommand):
    help = (
        "Import FILE for --symbol: either `ts,open,high,low,close,volume` (CSV or Parquet; times"
        " with an offset, or naive ones with --tz) or a Polygon flat file (.csv or .csv.gz with"
        " window_start). Bad rows are logged with their line number and skipped; re-running"
        " changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--source", default=BarSource.IMPORT, choices=BarSource.values)
        parser.add_argument(
            "--tz",
            default="",
            help="timezone of times without an offset, e.g. America/New_York (refused without)",
        )

    def handle(self, *args, **options):
        path: Path = options["file"]
        symbol = options["symbol"].strip().upper()
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        try:
            tz = zone(options["tz"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if path.suffix.lower() in (".parquet", ".pq"):
            try:
                self._store(
                    path, read_bars_parquet(path, symbol=symbol, source=options["source"], tz=tz)
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            return
        gzipped = path.suffix == ".gz"
        with gzip.open(path, "rt") if gzipped else open(path, newline="") as handle:
            header = handle.readline().strip().lower().split(",")
        try:
            if "window_start" in header:
                self._flatfile(path, symbol, options["source"], gzipped)
            elif set(CSV_COLUMNS) <= set(header):
                self._bars_csv(path, symbol, options["source"], gzipped, tz)
            else:
                raise CommandError(
                    f"{path}: header {header} is neither {','.join(CSV_COLUMNS)} nor a flat file"
                )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def _flatfile(self, path: Path, symbol: str, source: str, gzipped: bool) -> None:
        with contextlib.ExitStack() as files:
            result = ingest_stream(
                files.enter_context(open(path, "rb")),
                key=str(path),
                symbols=[symbol],
                dataset="indices" if is_index(symbol) else "stocks",
                source=source,
                gzipped=gzipped,
                reopen=lambda: files.enter_context(open(path, "rb")),
            )
        self.stdout.write(result.summary())

    def _store(self, path: Path, bars) -> None:
        stored = read = 0
        chunk = []
        for bar in bars:
            read += 1
            chunk.append(bar)
            if len(chunk) >= CHUNK:
                stored += bars_upsert(bars=chunk)
                chunk = []
        if chunk:
            stored += bars_upsert(bars=chunk)
        self.stdout.write(f"{path}: {read} valid rows, {stored} inserted/changed")

    def _bars_csv(self, path: Path, symbol: str, source: str, gzipped: bool, tz) -> None:
        read = stored = bad = 0
        chunk = []
        with gzip.open(path, "rt", newline="") if gzipped else open(path, newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                read += 1
                try:
                    chunk.append(parse_bar_row(row, symbol=symbol, source=source, tz=tz))
                except BadRow as exc:
                    bad += 1
                    self.stderr.write(f"{path} line {reader.line_num} skipped: {exc}")
                    continue
                if len(chunk) >= CHUNK:
                    stored += bars_upsert(bars=chunk)
                    chunk = []
        if chunk:
            stored += bars_upsert(bars=chunk)
        self.stdout.write(
            f"{path}: {read} rows read, {read - bad} valid, {bad} bad, {stored} inserted/changed"
        )
