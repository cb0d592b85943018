"""Close every managed position (or one symbol's) at market. Audited."""

import json

from django.core.management.base import BaseCommand

from trading.services import positions_flatten


class Command(BaseCommand):
    help = "Flatten all positions, or --symbol SYM."

    def add_arguments(self, parser):
        parser.add_argument("--symbol", default=None)
        parser.add_argument("--reason", default="flatten (manage.py)")

    def handle(self, *args, **options):
        result = positions_flatten(symbol=options["symbol"], reason=options["reason"])
        self.stdout.write(json.dumps(result))
