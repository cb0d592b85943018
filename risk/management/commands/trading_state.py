"""Show or set the trading state (ACTIVE / REDUCING / HALTED); changes are audited."""

from django.core.management.base import BaseCommand, CommandError

from risk.models import TradingMode
from risk.selectors import trading_state_get
from risk.services import trading_state_set


class Command(BaseCommand):
    help = "Show the trading state, or set it: trading_state HALTED --reason 'news'."

    def add_arguments(self, parser):
        parser.add_argument(
            "state",
            nargs="?",
            choices=[*TradingMode.values, *[v.lower() for v in TradingMode.values]],
        )
        parser.add_argument("--reason", default="set by manage.py")

    def handle(self, *args, **options):
        if options["state"]:
            try:
                trading_state_set(
                    state=options["state"], reason=options["reason"], actor="manage.py"
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        row = trading_state_get()
        self.stdout.write(f"{row.state} ({row.reason or 'no reason recorded'})")
