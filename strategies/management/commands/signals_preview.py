"""`manage.py signals_preview [--symbols SPY,QQQ]`: what every setup says now, as JSON lines."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from strategies.journal import json_safe
from strategies.services import signals_preview


class Command(BaseCommand):
    help = "Show what each enabled setup says on the latest stored bar of each symbol."

    def add_arguments(self, parser):
        parser.add_argument("--symbols", default="", help="comma-separated (default: SYMBOLS)")

    def handle(self, *args, **options):
        symbols = [s.strip().upper() for s in options["symbols"].split(",") if s.strip()]
        for item in signals_preview(symbols=symbols or None):
            self.stdout.write(json.dumps(json_safe(item)))
