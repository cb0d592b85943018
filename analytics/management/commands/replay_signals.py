"""Replay expectancy of the last N journaled signals: forward returns, MFE/MAE, per setup."""

import json

from django.core.management.base import BaseCommand, CommandError

from analytics.expectancy import signals_replay


class Command(BaseCommand):
    help = "Forward returns, MFE/MAE and per-setup expectancy (with 95% intervals) of signals."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=200, help="last N signals (default 200)")
        parser.add_argument("--horizon", type=int, default=30, help="bars after entry (default 30)")
        parser.add_argument("--setups", default="", help="comma-separated setups (default all)")
        parser.add_argument("--json", dest="json_out", default="", help="write the full result")

    def handle(self, *args, limit, horizon, setups, json_out, **options):
        if limit < 1 or horizon < 1:
            raise CommandError("--limit and --horizon must be >= 1")
        chosen = [s.strip().upper() for s in setups.split(",") if s.strip()] or None
        result = signals_replay(limit=limit, horizon=horizon, setups=chosen)
        out = self.stdout
        out.write(
            f"{result['signals']} signals, {result['evaluated']} with forward bars "
            f"(horizon {horizon} bars, entry at the next bar's open)"
        )
        header = f"{'setup':<16}{'n':>5}{'win%':>8}{'exp %':>9}{'95% CI (t)':>22}{'MFE %':>8}"
        out.write(header + f"{'MAE %':>8}{'exp R':>8}")
        for setup, row in result["by_setup"].items():
            ci = row["ci_t"]
            ci_text = (
                f"[{ci['low'] * 100:+.3f}, {ci['high'] * 100:+.3f}]"
                if ci["low"] is not None
                else "-"
            )
            exp_r = f"{row['expectancy_r']:+.2f}" if row["expectancy_r"] is not None else "-"
            out.write(
                f"{setup:<16}{row['signals']:>5}{row['win_rate'] * 100:>7.1f}%"
                f"{row['expectancy'] * 100:>+9.3f}{ci_text:>22}{row['mean_mfe'] * 100:>8.3f}"
                f"{row['mean_mae'] * 100:>8.3f}{exp_r:>8}"
            )
        if json_out:
            with open(json_out, "w") as handle:
                json.dump(result, handle, indent=2, default=str)
            out.write(f"wrote {json_out}")
