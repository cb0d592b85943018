"""Walk-forward analysis: choose on a training window, trade on the next unseen window."""

from django.core.management.base import BaseCommand, CommandError

from analytics.management.grid_options import (
    add_grid_arguments,
    base_from_options,
    grid_from_options,
)
from analytics.walkforward import OBJECTIVES, WalkForwardError, WalkForwardPlan, walkforward_start


class Command(BaseCommand):
    help = (
        "Walk-forward over sessions, e.g. --grid 'RISK_STOP_ATR_MULTIPLIER=1.0,1.5,2.0' "
        "--train 20 --test 10 (rolling) or --anchored. See docs/backtesting.md."
    )

    def add_arguments(self, parser):
        add_grid_arguments(parser, data_help="db, or CSV file(s) of one symbol, comma-separated")
        parser.add_argument("--train", type=int, default=20, help="sessions per training window")
        parser.add_argument("--test", type=int, default=5, help="sessions per test window")
        parser.add_argument("--step", type=int, default=0, help="sessions between folds (=test)")
        parser.add_argument("--anchored", action="store_true", help="training always from day 1")
        parser.add_argument("--objective", choices=OBJECTIVES, default="total_pnl")
        parser.add_argument(
            "--search", type=int, default=0, help="try N random candidates of the grid (seeded)"
        )
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **o):
        grid = grid_from_options(o)
        base = base_from_options(o)
        plan = WalkForwardPlan(
            grid=grid, base=base, train=o["train"], test=o["test"], step=o["step"] or o["test"],
            anchored=o["anchored"], objective=o["objective"], search=o["search"], seed=o["seed"],
        )  # fmt: skip
        try:
            run = walkforward_start(plan)
        except (WalkForwardError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"WalkForwardRun #{run.pk}: {len(run.folds)} folds x {len(run.candidates)} candidates"
        )
        if run.status == "running":
            self.stdout.write("dispatched to the workers")
            return
        self._print(run.summary)

    def _print(self, s: dict) -> None:
        out = self.stdout
        out.write(f"{'fold':>4}  {'test sessions':<23}{'IS exp $':>10}{'OOS exp $':>10}"
                  f"{'IS P&L':>10}{'OOS P&L':>10}{'OOS rank':>10}  chosen")  # fmt: skip
        for f in s["folds"]:
            if "chosen" not in f:
                out.write(f"{f['fold']:>4}  {f['error']}")
                continue
            i, o = f["in_sample"], f["out_of_sample"]
            exp = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            chosen = ", ".join(f"{k}={v}" for k, v in f["chosen"].items())
            out.write(
                f"{f['fold']:>4}  {f['test'][0]}..{f['test'][1][5:]:<9}{exp(i['expectancy']):>10}"
                f"{exp(o['expectancy']):>10}{i['total_pnl']:>10.2f}{o['total_pnl']:>10.2f}"
                f"{f['oos_rank']:>6.1f}/{f['oos_rank_of']:<3}  {chosen}"
            )
        out.write(f"stitched out-of-sample P&L: {s['oos_total_pnl']:.2f}; "
                  f"efficiency (OOS/IS per session): {s['efficiency']}")  # fmt: skip
        over = s["overfitting"]
        pbo = (over.get("pbo") or {}).get("pbo")
        dsr = (over.get("deflated_sharpe") or {}).get("dsr")
        out.write(
            f"PBO (CSCV): {'-' if pbo is None else f'{pbo:.3f}'}; deflated Sharpe of the best: "
            f"{'-' if dsr is None else f'{dsr:.3f}'} ({over.get('selected')})"
        )
        for name, st in s["stability"].items():
            out.write(f"  {name}: {st['distinct']} distinct, most common {st['most_common']} "
                      f"in {st['share'] * 100:.0f}% of folds")  # fmt: skip
        if s["failed"]:
            out.write(f"{s['failed']} cells failed: {'; '.join(s['errors'])}")
