"""Event-driven backtest: every bar goes through the live path's steps, in the live order.

For each bar (all symbols merged by time, then by the order the symbols were given), exactly as
`trading.pipeline.process_bar_close` does at that bar's close (the simulated clock: bar start +
1 minute):
1. paper fills of working orders in the bar's symbol (placed up to the bar's start);
2. the strategy engine and setups (cooldown included) on the bar;
3. the exit manager for open trades executing in the bar's symbol;
4. each fired signal: risk rules on the exposure, trade and entry order.
Nothing touches the database.
"""

from __future__ import annotations

import time as wall
from datetime import timedelta
from decimal import Decimal

import pandas as pd

from analytics.backtest.config import BacktestConfig
from analytics.backtest.paper_ledger import PaperLedger
from analytics.backtest.result import BacktestResult
from analytics.backtest.strategy_driver import PriceLookup, StrategyDriver
from risk.config import symbol_params
from trading.fill_model import BarPrices

BAR = timedelta(minutes=1)


def merged_bars(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All bars of all symbols in processing order: time, then the symbols' given order."""
    parts = []
    for rank, (symbol, frame) in enumerate(frames.items()):
        part = frame[["open", "high", "low", "close", "volume"]].copy()
        part["symbol"] = symbol
        part["rank"] = rank
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["open", "high", "low", "close", "volume", "symbol", "rank"])
    merged = pd.concat(parts)
    merged["ts_ns"] = merged.index.as_unit("ns").asi8
    return merged.sort_values(["ts_ns", "rank"], kind="stable")


def symbol_params_for(symbols, config: BacktestConfig, *, use_db: bool) -> dict:
    """Per-symbol risk values: the admin's SymbolOverride rows when a database is at hand
    (read once, before the loop), else environment overrides and defaults."""
    out = {}
    for symbol in symbols:
        if use_db:
            from risk.selectors import symbol_params_get

            out[symbol] = symbol_params_get(symbol=symbol, config=config.risk)
        else:
            out[symbol] = symbol_params(symbol, config.risk)
    return out


class _CrossTracker:
    """ema_20 crossing below ema_50 between a symbol's last two evaluated bars (what
    `trading.exits.ema_crossed_down` reads from the FeatureSnapshot rows)."""

    def __init__(self) -> None:
        self.prev: dict | None = None
        self.cur: dict | None = None

    def push(self, row: dict | None) -> None:
        self.prev, self.cur = self.cur, row

    def crossed_down(self) -> bool:
        p, c = self.prev, self.cur
        if p is None or c is None:
            return False
        return p["ema_20"] >= p["ema_50"] and c["ema_20"] < c["ema_50"]


def run_event(
    frames: dict[str, pd.DataFrame],
    config: BacktestConfig,
    *,
    symbols: list[str],
    use_db_params: bool = False,
    progress: bool = False,
) -> BacktestResult:
    """Backtest `symbols` (signal symbols) over `frames` (their bars and their execution
    symbols' bars, analytics.bars layout)."""
    started = wall.perf_counter()
    cfg = config.strategy
    lookups = {s: PriceLookup(f) for s, f in frames.items()}
    drivers = {}
    for symbol in symbols:
        exec_symbol = cfg.execution_symbol(symbol)
        proxy = lookups.get(exec_symbol) if exec_symbol != symbol else None
        drivers[symbol] = StrategyDriver(
            symbol, cfg, exec_prices=lookups.get(exec_symbol), volume_proxy=proxy
        )
    exec_symbols = sorted({cfg.execution_symbol(s) for s in symbols})
    missing = [s for s in exec_symbols if s not in frames]
    if missing:
        raise ValueError(f"no bars for execution symbol(s) {', '.join(missing)}")
    ledger = PaperLedger(
        risk=config.risk,
        costs=config.costs,
        starting_cash=config.starting_cash,
        params=symbol_params_for(exec_symbols, config, use_db=use_db_params),
        flatten_before_close_min=config.flatten_before_close_min,
        worst_case=config.worst_case,
        policy_book=config.policy_book,
        etf_symbols=cfg.etf_symbols,
    )
    crosses = {s: _CrossTracker() for s in symbols}
    bars = merged_bars(frames)
    times = pd.DatetimeIndex(bars.index).to_pydatetime()
    names = bars["symbol"].to_numpy()
    values = bars[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float).tolist()
    bar_iter = range(len(bars))
    if progress:
        from tqdm import tqdm

        bar_iter = tqdm(bar_iter, total=len(bars), unit="bar", mininterval=0.5, desc="backtest")
    kill_switch = config.risk.max_daily_loss_usd > 0
    for i in bar_iter:
        symbol = names[i]
        ts = times[i]
        o, h, lo, c, v = values[i]
        prices = None
        fills = managed = 0
        if ledger.orders_by_symbol.get(symbol):
            prices = _prices(o, h, lo, c)
            fills = ledger.fills_on_bar(symbol, ts, prices)
        fired = []
        driver = drivers.get(symbol)
        if driver is not None:
            fired = driver.on_bar(pd.Timestamp(ts), o, h, lo, c, v)
            crosses[symbol].push(driver.row)
        now = ts + BAR
        if any(t.status == "open" and t.signal.execution_symbol == symbol for t in ledger.live):
            prices = prices or _prices(o, h, lo, c)
            managed = ledger.exits_on_bar(
                symbol, now, prices, {s: t.crossed_down() for s, t in crosses.items()}
            )
        if kill_switch and (
            fills or managed or any(t.signal.execution_symbol == symbol for t in ledger.live)
        ):
            ledger.mark_and_guard(symbol, c, now)
        if fired:
            ledger.signals_handle(fired, now)
    sessions = sorted({d for s in symbols for d in frames[s].loc[frames[s]["regular"], "session"]})
    return BacktestResult(
        mode="event",
        symbols=list(symbols),
        sessions=sessions,
        bars=int(len(bars)),
        trades=ledger.records(),
        signals=ledger.signals,
        params=config.describe(),
        elapsed_sec=wall.perf_counter() - started,
    )


def _prices(o: float, h: float, lo: float, c: float) -> BarPrices:
    # as BarPrices.of(bar) does with the stored floats
    return BarPrices(Decimal(str(o)), Decimal(str(h)), Decimal(str(lo)), Decimal(str(c)))
