"""Backtest one or more bar files as one continuous run and print its money-safety figures
(analytics.money_safety) as JSON: the figures of docs/backtesting.md "Money safety"."""

import json

import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from analytics.backtest.config import BacktestConfig
from analytics.backtest.runner import MODES, DataSpec, backtest_run
from analytics.bars import bars_frame_from_file
from analytics.money_safety import money_figures


class Command(BaseCommand):
    help = "Money-safety figures (cash path, exposure, duplicated ideas, stop-out loss / risk)."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", help="CSV/Parquet bar files of one symbol")
        parser.add_argument("--symbol", default="SPY")
        parser.add_argument("--tz", default="", help="timezone of naive times")
        parser.add_argument("--mode", choices=MODES, default="event")
        parser.add_argument("--engine", choices=("auto", "kernel", "ledger"), default="auto")
        parser.add_argument(
            "--index",
            default="",
            help="also trade a synthetic index executed in --symbol, e.g. SPX:10 (prices x 10):"
            " the index/proxy pair DUPLICATE_EXPOSURE must treat as one idea",
        )

    def handle(self, *args, **o):
        symbol = o["symbol"].upper()
        try:
            frames = [bars_frame_from_file(f, tz=o["tz"] or None) for f in o["files"]]
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        frame = pd.concat(frames).sort_index()
        frame = frame[~frame.index.duplicated(keep="first")]
        config = BacktestConfig.from_settings()
        frames, symbols = {symbol: frame}, (symbol,)
        if o["index"]:
            index, _, factor = o["index"].upper().partition(":")
            if config.strategy.execution_symbol(index) != symbol:
                raise CommandError(f"{index} does not execute in {symbol} (SYMBOL_EXECUTION_MAP)")
            scaled = frame.copy()
            prices = ["open", "high", "low", "close"]
            scaled[prices] = scaled[prices] * float(factor or 10)
            frames[index], symbols = scaled, (index, symbol)
        result = backtest_run(
            spec=DataSpec("file", symbols),
            config=config,
            mode=o["mode"],
            frames=frames,
            engine=o["engine"],
        )
        figures = money_figures(
            result.closed_trades(),
            starting_cash=float(config.starting_cash),
            risk_usd=float(config.risk.risk_per_trade_usd),
            window_sec=config.risk.idea_window_sec,
        )
        out = {
            "mode": result.mode,
            "engine": result.params.get("engine"),
            "sessions": len(result.sessions),
            "signals": result.signal_counts(),
            "state_changes": [c.as_dict() for c in result.state_changes],
            "money": figures,
            "stats": {
                k: {n: v[n] for n in ("trades", "win_rate", "expectancy", "total_pnl")}
                for k, v in result.stats().items()
            },
        }
        self.stdout.write(json.dumps(out, indent=2, default=str))
