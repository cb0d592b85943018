"""Parameter sweep: one backtest per grid combination, fanned out as a Celery chord."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from analytics.sweeps import GridError, grid_combinations, grid_parse, sweep_start


class Command(BaseCommand):
    help = "Sweep settings, e.g. --grid 'RISK_STOP_ATR_MULTIPLIER=1.0,1.2,1.5' --grid ..."

    def add_arguments(self, parser):
        parser.add_argument("--grid", action="append", default=[], help="NAME=v1,v2,...")
        parser.add_argument("--data", default="db", help="db (stored bars) or a CSV file")
        parser.add_argument("--symbol", default="SPY", help="signal symbol(s), comma-separated")
        parser.add_argument("--start", type=date.fromisoformat, default=None)
        parser.add_argument("--end", type=date.fromisoformat, default=None)
        parser.add_argument("--setups", default="")
        parser.add_argument("--mode", choices=("fast", "event"), default="fast")
        parser.add_argument("--worst-case", action="store_true")

    def handle(self, *args, **o):
        if not o["grid"]:
            raise CommandError("give at least one --grid NAME=v1,v2")
        try:
            grid = grid_parse(o["grid"])
        except GridError as exc:
            raise CommandError(str(exc)) from exc
        base = {
            "data": o["data"],
            "symbols": [s.strip().upper() for s in o["symbol"].split(",") if s.strip()],
            "start": o["start"].isoformat() if o["start"] else None,
            "end": o["end"].isoformat() if o["end"] else None,
            "setups": [s.strip().upper() for s in o["setups"].split(",") if s.strip()] or None,
            "mode": o["mode"],
            "worst_case": o["worst_case"],
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
