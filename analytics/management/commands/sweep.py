"""Parameter sweep: one backtest per grid combination, fanned out as a Celery chord."""

from datetime import date

from django.core.management.base import BaseCommand

from analytics.management.grid_options import (
    add_grid_arguments,
    base_from_options,
    grid_from_options,
)
from analytics.sweeps import grid_combinations, sweep_start


class Command(BaseCommand):
    help = "Sweep settings, e.g. --grid 'RISK_STOP_ATR_MULTIPLIER=1.0,1.2,1.5' --grid ..."

    def add_arguments(self, parser):
        add_grid_arguments(parser, data_help="db (stored bars) or a CSV file")
        parser.add_argument("--start", type=date.fromisoformat, default=None)
        parser.add_argument("--end", type=date.fromisoformat, default=None)

    def handle(self, *args, **o):
        grid = grid_from_options(o)
        base = {
            **base_from_options(o),
            "start": o["start"].isoformat() if o["start"] else None,
            "end": o["end"].isoformat() if o["end"] else None,
        }
        n = len(grid_combinations(grid))
        self.stdout.write(f"sweep: {n} combinations of {', '.join(grid)}")
        sweep = sweep_start(grid=grid, base=base)
        if sweep.status == "running":
            self.stdout.write(f"SweepRun #{sweep.pk} dispatched to the workers")
            return
        self.stdout.write(f"SweepRun #{sweep.pk} {sweep.status}")
        for row in sweep.summary.get("rows", []):
            label = ", ".join(f"{k}={v}" for k, v in row["overrides"].items())
            if row.get("error"):
                self.stdout.write(f"  {label}: error {row['error']}")
                continue
            s = row["stats"]
            win = "-" if s["win_rate"] is None else f"{s['win_rate'] * 100:.1f}%"
            self.stdout.write(
                f"  {label}: {s['trades']} trades, win {win}, P&L {s['total_pnl']:.2f}, "
                f"max DD {s['max_drawdown']:.2f} (BacktestRun #{row['run_id']})"
            )
        over = sweep.summary.get("overfitting") or {}
        pbo = (over.get("pbo") or {}).get("pbo")
        dsr = (over.get("deflated_sharpe") or {}).get("dsr")
        self.stdout.write(
            f"overfitting odds: PBO {'-' if pbo is None else f'{pbo:.3f}'} (CSCV), deflated "
            f"Sharpe of the best {'-' if dsr is None else f'{dsr:.3f}'} ({over.get('selected')})"
        )
