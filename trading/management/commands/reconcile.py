"""Reconcile the ledger with the broker now (orders, fills, positions); prints the result."""

import json

from django.core.management.base import BaseCommand

from trading.reconciliation import reconcile_run, startup_reconcile


class Command(BaseCommand):
    help = "Reconcile orders, fills and positions with the broker."

    def add_arguments(self, parser):
        parser.add_argument(
            "--startup",
            action="store_true",
            help="fail closed: HALT first, restore the trading state only on success",
        )

    def handle(self, *args, **options):
        result = startup_reconcile() if options["startup"] else reconcile_run()
        self.stdout.write(json.dumps(result, indent=2))
        if not result["ok"]:
            raise SystemExit(1)
