"""Load Polygon minute-aggregate flat files from S3 into bars_1m."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketdata.flatfiles import DATASETS
from marketdata.services import flatfiles_backfill


class Command(BaseCommand):
    help = (
        "Stream Polygon flat files (.csv.gz on S3) for --date[..--end] into bars_1m, keeping"
        " only --symbols. Re-running changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
        parser.add_argument("--end", type=date.fromisoformat, help="last day (default --date)")
        parser.add_argument(
            "--symbols",
            default=",".join(settings.POLYGON_WS_SYMBOLS),
            help="comma list (SPX,NDX → indices files; SPY,QQQ → stocks; options: underlyings)",
        )
        parser.add_argument("--dataset", choices=sorted(DATASETS), help="default: by symbol")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        start, end = options["date"], options["end"] or options["date"]
        if end < start:
            raise CommandError(f"--end {end} is before --date {start}")
        symbols = [s.strip().upper() for s in options["symbols"].split(",") if s.strip()]
        if not symbols:
            raise CommandError("--symbols is empty")
        datasets = [options["dataset"]] if options["dataset"] else None
        try:
            results = flatfiles_backfill(
                start=start,
                end=end,
                symbols=symbols,
                datasets=datasets,
                progress=not options["no_progress"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for result in results:
            self.stdout.write(result.summary())
        loaded = [r for r in results if not r.missing]
        self.stdout.write(
            f"summary: {len(loaded)} files read, {len(results) - len(loaded)} missing,"
            f" {sum(r.matched for r in loaded)} rows wanted,"
            f" {sum(r.written for r in loaded)} inserted/changed,"
            f" {sum(r.bad for r in loaded)} bad"
        )
