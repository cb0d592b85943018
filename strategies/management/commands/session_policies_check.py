"""`manage.py session_policies_check FILE`: validate a session policy file before deploying it."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from strategies.policies import policies_load


class Command(BaseCommand):
    help = "Validate a SESSION_POLICY_FILE and print its sessions."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, **options):
        try:
            book = policies_load(options["path"])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        for p in book.sessions:
            self.stdout.write(
                f"{p.name}: {p.start:%H:%M}-{p.end:%H:%M} {book.timezone.key}"
                f" allow={sorted(p.allow_setups)} ban={sorted(p.ban_setups)}"
                f" rvol_min={p.rvol_min} slope=[{p.ema20_slope_min}, {p.ema20_slope_max}]"
                f" time_stop_sec={p.time_stop_sec} max_trades={p.max_trades}"
                f" etf_only={p.etf_only}"
            )
