"""Label sessions trend vs balance from their regime statistics (analytics.session_labels)."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from analytics.services import session_labels_update


class Command(BaseCommand):
    help = "Write a trend/balance SessionLabel for each stored (or CSV) session of the symbols."

    def add_arguments(self, parser):
        parser.add_argument("--symbols", default="", help="comma-separated (default SYMBOLS)")
        parser.add_argument("--start", type=date.fromisoformat, default=None)
        parser.add_argument("--end", type=date.fromisoformat, default=None)
        parser.add_argument("--data", default="db", help="db (default) or a CSV file")

    def handle(self, *args, symbols, start, end, data, **options):
        chosen = [s.strip().upper() for s in symbols.split(",") if s.strip()] or None
        if data != "db" and (not chosen or len(chosen) != 1):
            raise CommandError("--data FILE needs exactly one --symbols value")
        try:
            result = session_labels_update(symbols=chosen, start=start, end=end, data=data)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        for symbol, labels in result.items():
            counts = {}
            for item in labels.values():
                counts[item["label"]] = counts.get(item["label"], 0) + 1
            self.stdout.write(f"{symbol}: {len(labels)} sessions labelled {counts}")
