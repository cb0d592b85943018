"""Pair live/paper trades with the backtester's trades of the same signals on the stored bars."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from analytics.drift import drift_ledger_update, drift_symbols
from autotrader_site.clock import clock


class Command(BaseCommand):
    help = "Drift ledger: live vs simulated fills per signal, summarised per setup."

    def add_arguments(self, parser):
        parser.add_argument("--start", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
        parser.add_argument("--end", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
        parser.add_argument("--symbol", default="", help="signal symbols (default: all traded)")

    def handle(self, *args, **o):
        end = o["end"] or clock.now().date()
        start = o["start"] or end
        if start > end:
            raise CommandError("--start is after --end")
        symbols = [s.strip().upper() for s in o["symbol"].split(",") if s.strip()]
        symbols = symbols or drift_symbols(start=start, end=end)
        if not symbols:
            self.stdout.write(f"no signals between {start} and {end}: nothing to compare")
            return
        try:
            summary = drift_ledger_update(symbols=symbols, start=start, end=end, now=clock.now())
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"drift {start}..{end} ({', '.join(symbols)}):")
        self.stdout.write(f"{'setup':<16}{'pairs':>6}{'missed':>7}{'live only':>10}"
                          f"{'entry bps':>10}{'exit bps':>9}{'entry s':>8}{'live P&L':>10}"
                          f"{'sim P&L':>10}")  # fmt: skip
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        for setup, s in {**summary["by_setup"], "ALL": summary["all"]}.items():
            self.stdout.write(
                f"{setup:<16}{s['pairs']:>6}{s['missed']:>7}{s['live_only']:>10}"
                f"{fmt(s['entry_slippage_bps']):>10}{fmt(s['exit_slippage_bps']):>9}"
                f"{fmt(s['entry_delay_sec']):>8}{s['live_pnl']:>10.2f}{s['sim_pnl']:>10.2f}"
            )
