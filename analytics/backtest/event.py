"""Event-driven backtest: every bar goes through the live path's own step.

For each bar (all symbols merged by time, then by the order the symbols were given), the same
`trading.core.step.bar_step` the live pipeline runs, at that bar's close (the simulated clock:
bar start + 1 minute), over the in-memory ledger (`memory_ledger.MemoryLedger`): fills ->
strategy (the incremental engine and setups, cooldown included) -> exits -> marks and the kill
switch -> signals -> risk -> entries. Nothing touches the database.
"""

from __future__ import annotations

import time as wall
from datetime import timedelta
from decimal import Decimal

import pandas as pd

from analytics.backtest.config import BacktestConfig
from analytics.backtest.memory_ledger import MemoryLedger
from analytics.backtest.result import BacktestResult
from analytics.backtest.strategy_driver import PriceLookup, StrategyDriver
from risk.config import symbol_params
from trading.core.fills import BarPrices
from trading.core.step import StepContext, bar_step, clock_end, clock_until
from trading.exits import flat_time

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
    params = symbol_params_for(exec_symbols, config, use_db=use_db_params)
    ledger = memory_ledger_for(config, params, frames)
    crosses = {s: _CrossTracker() for s in symbols}
    ctx = step_context(config, params, lambda sym: crosses[sym].crossed_down())
    bars = merged_bars(frames)
    times = pd.DatetimeIndex(bars.index).to_pydatetime()
    names = bars["symbol"].to_numpy()
    values = bars[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float).tolist()
    bar_iter = range(len(bars))
    clock = None  # the latest minute boundary the clock reached
    if progress:
        from tqdm import tqdm

        bar_iter = tqdm(bar_iter, total=len(bars), unit="bar", mininterval=0.5, desc="backtest")
    for i in bar_iter:
        symbol = names[i]
        ts = times[i]
        o, h, lo, c, v = values[i]
        driver = drivers.get(symbol)
        clock = clock_until(ledger, last=clock, until=ts, ctx=ctx)

        def strategy(driver=driver, symbol=symbol, ts=ts, o=o, h=h, lo=lo, c=c, v=v):
            if driver is None:
                return []
            fired = driver.on_bar(pd.Timestamp(ts), o, h, lo, c, v)
            crosses[symbol].push(driver.row)
            return ledger.candidates(fired) if fired else []

        bar_step(
            ledger,
            symbol=symbol,
            ts=ts,
            bar=lambda o=o, h=h, lo=lo, c=c, v=v: _prices(o, h, lo, c, v),
            strategy=strategy,
            ctx=ctx,
        )
    if len(bars):  # the clock runs on to the day's flat time: a feed that stops ends flat
        clock_until(ledger, last=clock, until=clock_end(times[-1], ctx), ctx=ctx)
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
        state_changes=ledger.state_changes,
    )


def _prices(o: float, h: float, lo: float, c: float, v: float | None = None) -> BarPrices:
    # as BarPrices.of(bar) does with the stored floats
    volume = None if v is None else Decimal(str(v))
    return BarPrices(Decimal(str(o)), Decimal(str(h)), Decimal(str(lo)), Decimal(str(c)), volume)


def memory_ledger_for(config: BacktestConfig, params: dict, frames=None) -> MemoryLedger:
    """The in-memory ledger of one run (`frames`: the bars its bar-less fills read the last
    close from)."""
    index = {}
    for symbol, frame in (frames or {}).items():
        index[symbol] = (frame.index.as_unit("ns").asi8, frame["close"].to_numpy(dtype=float))
    return MemoryLedger(
        risk=config.risk,
        costs=config.fill_costs(),
        starting_cash=config.starting_cash,
        params=params,
        policy_book=config.policy_book,
        etf_symbols=config.strategy.etf_symbols,
        bars_index=index,
    )


def step_context(config: BacktestConfig, params: dict, cross_down) -> StepContext:
    """What every bar step of a backtest reads: the risk values, per-symbol parameters, the
    session's flat time, the fill model and the EMA cross-down of a signal symbol."""
    margin = config.flatten_before_close_min
    return StepContext(
        config=config.risk,
        params=params.__getitem__,
        flat_at=lambda now: flat_time(now, margin),
        costs=config.fill_costs(),
        cross_down=cross_down,
    )
