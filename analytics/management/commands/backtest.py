"""Backtest the live strategy, risk and execution rules over stored or CSV bars."""

import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from analytics.backtest.config import BacktestConfig
from analytics.backtest.runner import MODES, DataSpec, backtest_persist, backtest_run


def _with_setups(config: BacktestConfig, names: list[str]) -> BacktestConfig:
    from dataclasses import replace

    from strategies.setups.registry import setups_all

    known = setups_all()
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown setups: {', '.join(unknown)} (known: {', '.join(known)})")
    return replace(config, strategy=replace(config.strategy, enabled_setups=tuple(names)))


class Command(BaseCommand):
    help = (
        "Backtest: decisions at each bar's close, market fills at the next bar's open ± "
        "slippage, stops/limits against the bar's high/low (stops first). See docs/backtesting.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", default="db", help="db (stored bars), a CSV or Parquet file")
        parser.add_argument("--tz", default="", help="timezone of naive times in --data")
        parser.add_argument("--symbol", default="SPY", help="signal symbol(s), comma-separated")
        parser.add_argument("--start", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
        parser.add_argument("--end", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
        parser.add_argument("--setups", default="", help="e.g. EMA_CROSS,ORB (default: enabled)")
        parser.add_argument("--mode", choices=MODES, default="fast")
        parser.add_argument(
            "--engine",
            choices=("auto", "kernel", "ledger"),
            default="auto",
            help="fast mode's lifecycle engine (auto: the numba kernel when it covers the config)",
        )
        parser.add_argument("--json", dest="json_out", default="", help="write trades+stats")
        parser.add_argument("--report", default="", help="directory for the HTML report")
        parser.add_argument("--persist", action="store_true", help="store as a BacktestRun")
        parser.add_argument("--name", default="", help="name of the stored run")
        parser.add_argument(
            "--worst-case",
            action="store_true",
            help="limits must trade through; triggered stops fill at the bar's extreme",
        )
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--lookahead-check",
            action="store_true",
            help="re-run on the data cut at K points; fail if any past decision, fill or "
            "feature changes (see docs/backtesting.md)",
        )
        parser.add_argument("--cuts", type=int, default=9, help="cut points of --lookahead-check")

    def handle(self, *args, **o):
        symbols = tuple(s.strip().upper() for s in o["symbol"].split(",") if s.strip())
        setups = [s.strip().upper() for s in o["setups"].split(",") if s.strip()] or None
        if not symbols:
            raise CommandError("--symbol is required")
        if o["start"] and o["end"] and o["start"] > o["end"]:
            raise CommandError("--start is after --end")
        if o["lookahead_check"]:
            return self._lookahead(symbols, setups, o)
        try:
            config = BacktestConfig.from_settings(worst_case=o["worst_case"])
            if setups:  # any known setup: built-in, SETUPS_DIR file, admin or plug-in
                config = _with_setups(config, setups)
            spec = DataSpec(o["data"], symbols, o["start"], o["end"], tz=o["tz"] or None)
            result = backtest_run(
                spec=spec,
                config=config,
                mode=o["mode"],
                progress=not o["no_progress"],
                engine=o["engine"],
            )
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self._print(result)
        for item in config.not_simulated():
            self.stderr.write(f"note: not simulated: {item}")
        if o["json_out"]:
            with open(o["json_out"], "w") as handle:
                json.dump(result.as_dict(), handle, indent=2, default=str)
            self.stdout.write(f"wrote {o['json_out']}")
        if o["report"]:
            from analytics.reports import report_write

            index = report_write(result, o["report"], starting_cash=float(config.starting_cash))
            self.stdout.write(f"report: {index}")
        if o["persist"]:
            run = backtest_persist(result, name=o["name"] or f"{','.join(symbols)} {o['mode']}")
            self.stdout.write(f"stored BacktestRun #{run.pk}")

    def _lookahead(self, symbols, setups, o):
        from analytics.lookahead import lookahead_check

        if o["cuts"] < 1:
            raise CommandError("--cuts must be >= 1")
        try:
            config = BacktestConfig.from_settings(worst_case=o["worst_case"])
            if setups:
                config = _with_setups(config, setups)
            spec = DataSpec(o["data"], symbols, o["start"], o["end"])
            report = lookahead_check(
                spec=spec, config=config, mode=o["mode"], cuts=o["cuts"], engine=o["engine"]
            )
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        for c in report.cuts:
            verdict = "ok" if c.difference is None else f"DIFFERS at {c.difference['bar']}"
            self.stdout.write(
                f"cut {c.cut} ({c.kind}): {c.decisions} decisions, {c.fills} fills, "
                f"{c.feature_rows} feature rows: {verdict}"
            )
        if o["json_out"]:
            with open(o["json_out"], "w") as handle:
                json.dump(report.as_dict(), handle, indent=2, default=str)
        if not report.passed:
            d = report.first_difference
            raise CommandError(
                f"look-ahead: the {d['what']} of bar {d['bar']} ({d['symbol']} "
                f"{d['setup'] or d['detail']}) changes when later bars are removed: "
                f"{d['with_future']} with them, {d['without_future']} without"
            )
        self.stdout.write(self.style.SUCCESS(f"look-ahead check passed at {len(report.cuts)} cuts"))

    def _print(self, result):
        out = self.stdout
        engine = result.params.get("engine")
        label = f"{result.mode} ({engine})" if engine else result.mode
        counts = result.signal_counts()
        out.write(
            f"{label}: {result.bars:,} bars, {len(result.sessions)} sessions, "
            f"{len(result.signals)} signals ({counts['approved']} approved, "
            f"{counts['blocked']} blocked), {len(result.closed_trades())} trades in "
            f"{result.elapsed_sec:.2f}s ({result.bars / max(result.elapsed_sec, 1e-9):,.0f} bars/s)"
        )
        out.write(
            f"{'setup':<16}{'trades':>7}{'win%':>7}{'expect $':>10}{'PF':>7}{'P&L $':>11}"
            f"{'maxDD $':>10}{'Sharpe':>8}"
        )
        for setup, s in result.stats().items():
            pf = "-" if s["profit_factor"] is None else f"{s['profit_factor']:.2f}"
            sharpe = "-" if s["sharpe_daily"] is None else f"{s['sharpe_daily']:.2f}"
            win = "-" if s["win_rate"] is None else f"{s['win_rate'] * 100:.1f}"
            exp = "-" if s["expectancy"] is None else f"{s['expectancy']:.2f}"
            out.write(
                f"{setup:<16}{s['trades']:>7}{win:>7}{exp:>10}{pf:>7}{s['total_pnl']:>11.2f}"
                f"{s['max_drawdown']:>10.2f}{sharpe:>8}"
            )
