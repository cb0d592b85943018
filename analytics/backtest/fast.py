"""Fast backtest: vectorised features and setup conditions, then a sequential pass that visits
only the bars where a trade is alive.

1. `strategies.features.compute_features` (the engine's vectorised twin) per symbol;
2. the setups as boolean arrays (`vector_setups`), the per-setup cooldown over the few fired
   bars, and each kept bar's levels from the live setup function itself;
3. a pass in the live processing order (time, then symbol) through the SAME in-memory paper
   ledger as the event mode (fills, exit manager, risk rules). Bars of a symbol with no working
   order and no open trade are skipped; when nothing is alive the pass jumps to the next
   signal.
The trade list equals the event-driven mode's (tests pin it on synthetic and real sessions).
"""

from __future__ import annotations

import time as wall
from datetime import timedelta

import numpy as np
import pandas as pd

from analytics.backtest.config import BacktestConfig
from analytics.backtest.event import _prices, merged_bars, symbol_params_for
from analytics.backtest.paper_ledger import PaperLedger
from analytics.backtest.result import BacktestResult
from analytics.backtest.strategy_driver import PriceLookup, fired_levels
from analytics.backtest.vector_setups import setup_masks
from strategies.features import compute_features
from strategies.features.sessions import bar_close_et
from strategies.setups import SETUPS, SetupContext

BAR = timedelta(minutes=1)
ROW_COLUMNS = (
    "ema_20",
    "ema_50",
    "ema_20_prev",
    "ema_50_prev",
    "ema_20_slope",
    "vwap",
    "vwap_sigma",
    "vwap_upper_1",
    "vwap_lower_1",
    "vwap_upper_2",
    "vwap_lower_2",
    "atr_14",
    "rvol",
    "hod",
    "lod",
    "or_high",
    "or_low",
    "prev_close",
    "prev_day_close",
    "ema5m_20",
    "ema5m_50",
    "ema15m_20",
    "ema15m_50",
    "regime_score",
)


def features_for(symbol: str, frames: dict[str, pd.DataFrame], config: BacktestConfig):
    """Vectorised features of `symbol`; an index symbol uses its execution proxy's volume at
    the same minute (0 when that bar is missing), as the live feature store does."""
    cfg = config.strategy
    frame = frames[symbol]
    bars = frame[["open", "high", "low", "close", "volume"]]
    proxy = cfg.execution_map.get(symbol)
    if proxy and proxy in frames:
        bars = bars.copy()
        bars["volume"] = frames[proxy]["volume"].reindex(bars.index).fillna(0.0).to_numpy()
    return compute_features(
        bars,
        lookback_days=cfg.lookback_days,
        lookback_min=cfg.lookback_min,
        rvol_profile_min_sessions=cfg.rvol_profile_min_sessions,
    )


def cooldown_keep(ts_ns: np.ndarray, cooldown_sec: int) -> np.ndarray:
    """Indices (into `ts_ns`, sorted) a setup keeps: a bar within the cooldown of the last KEPT
    bar is suppressed (and does not restart the cooldown)."""
    if cooldown_sec <= 0 or ts_ns.size == 0:
        return np.arange(ts_ns.size)
    window = cooldown_sec * 1_000_000_000
    keep = []
    last = None
    for i, t in enumerate(ts_ns.tolist()):
        if last is None or t - last >= window:
            keep.append(i)
            last = t
    return np.asarray(keep, dtype=np.int64)


def _row(feats: pd.DataFrame, arrays: dict, i: int, close: float, ts) -> dict:
    row = {name: float(arrays[name][i]) for name in ROW_COLUMNS}
    row["close"] = close
    row["ts"] = ts
    return row


def run_fast(
    frames: dict[str, pd.DataFrame],
    config: BacktestConfig,
    *,
    symbols: list[str],
    use_db_params: bool = False,
    progress: bool = False,
) -> BacktestResult:
    started = wall.perf_counter()
    cfg = config.strategy
    lookups = {s: PriceLookup(f) for s, f in frames.items()}
    exec_symbols = sorted({cfg.execution_symbol(s) for s in symbols})
    missing = [s for s in exec_symbols if s not in frames]
    if missing:
        raise ValueError(f"no bars for execution symbol(s) {', '.join(missing)}")
    rank = {s: r for r, s in enumerate(frames)}
    setup_order = {name: k for k, name in enumerate(cfg.enabled_setups)}

    # 1-2: features, masks, cooldown, levels of the kept bars
    candidates = []  # (ts_ns, rank, setup order, FiredSignal)
    cross_arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for symbol in symbols:
        frame = frames[symbol]
        feats = features_for(symbol, frames, config)
        arrays = {name: feats[name].to_numpy(dtype=float) for name in ROW_COLUMNS}
        regular = feats["in_session"].to_numpy(dtype=bool)
        ts_ns = frame.index.as_unit("ns").asi8
        with np.errstate(invalid="ignore"):
            e20, e50 = arrays["ema_20"], arrays["ema_50"]
            prev_ok = np.r_[False, regular[:-1]]
            cross = (
                regular
                & prev_ok
                & (np.r_[np.nan, e20[:-1]] >= np.r_[np.nan, e50[:-1]])
                & (e20 < e50)
            )
        cross_arrays[symbol] = (ts_ns, cross)
        reg_idx = np.flatnonzero(regular)
        closes = frame["close"].to_numpy(dtype=float)
        masks = setup_masks(
            feats.iloc[reg_idx].assign(close=closes[reg_idx]), symbol=symbol, cfg=cfg
        )
        times = frame.index
        for name, mask in masks.items():
            fired_idx = reg_idx[mask]
            for j in cooldown_keep(ts_ns[fired_idx], cfg.cooldown_sec):
                i = int(fired_idx[j])
                ts = times[i].to_pydatetime()
                row = _row(feats, arrays, i, float(closes[i]), ts)
                decision = SETUPS[name](
                    row, SetupContext(symbol=symbol, close_et=bar_close_et(ts)), cfg
                )
                if not decision.fired:  # the arrays and the live function disagree
                    raise AssertionError(
                        f"fast mode: {name} mask fired on {symbol} {ts} but the setup says "
                        f"{decision.status}: {decision.reasons}"
                    )
                signal = fired_levels(
                    decision,
                    row=row,
                    symbol=symbol,
                    cfg=cfg,
                    exec_prices=lookups.get(cfg.execution_symbol(symbol)),
                )
                candidates.append((int(ts_ns[i]), rank[symbol], setup_order[name], signal))
    candidates.sort(key=lambda c: c[:3])

    # 3: the sequential pass over trade lifecycles
    ledger = PaperLedger(
        risk=config.risk,
        costs=config.costs,
        starting_cash=config.starting_cash,
        params=symbol_params_for(exec_symbols, config, use_db=use_db_params),
        flatten_before_close_min=config.flatten_before_close_min,
        worst_case=config.worst_case,
    )
    bars = merged_bars(frames)
    g_ts = bars["ts_ns"].to_numpy()
    g_rank = bars["rank"].to_numpy()
    g_sym = bars["symbol"].to_numpy()
    g_val = bars[["open", "high", "low", "close"]].to_numpy(dtype=float)
    g_time = pd.DatetimeIndex(bars.index)
    # processing order as one sortable number: seconds * 64 + symbol rank (< 64 symbols)
    key = (g_ts // 1_000_000_000) * 64 + g_rank
    by_bar: dict[int, list] = {}
    for ts_ns, r, _, signal in candidates:
        by_bar.setdefault((ts_ns // 1_000_000_000) * 64 + r, []).append(signal)
    signal_keys = np.array(sorted(by_bar), dtype=np.int64)
    signal_pos = np.searchsorted(key, signal_keys)
    next_signal = 0
    n = len(bars)
    i = 0
    progress_bar = None
    if progress:
        from tqdm import tqdm

        progress_bar = tqdm(total=n, unit="bar", mininterval=0.5, desc="backtest (fast)")
    while i < n:
        active = ledger.live or any(ledger.orders_by_symbol.values())
        if not active:
            if next_signal >= len(signal_pos):
                break
            i = int(signal_pos[next_signal])  # nothing alive: jump to the next signal
        symbol = g_sym[i]
        k = int(key[i])
        has_orders = bool(ledger.orders_by_symbol.get(symbol))
        has_open = any(
            t.status == "open" and t.signal.execution_symbol == symbol for t in ledger.live
        )
        is_signal_bar = next_signal < len(signal_keys) and signal_keys[next_signal] == k
        if has_orders or has_open or is_signal_bar:
            ts = g_time[i].to_pydatetime()
            o, h, lo, c = g_val[i].tolist()
            prices = None
            if has_orders:
                prices = _prices(o, h, lo, c)
                ledger.fills_on_bar(symbol, ts, prices)
            now = ts + BAR
            if any(t.status == "open" and t.signal.execution_symbol == symbol for t in ledger.live):
                prices = prices or _prices(o, h, lo, c)
                crosses = {s: _cross_at(cross_arrays[s], rank[s], g_ts[i], rank[symbol])
                           for s in {t.signal.symbol for t in ledger.live}}  # fmt: skip
                ledger.exits_on_bar(symbol, now, prices, crosses)
            if is_signal_bar:
                for signal in by_bar[k]:
                    if signal.entry is None:
                        ledger.signal_failed(signal.symbol, signal.setup, signal.bar_ts)
                    else:
                        ledger.signal_handle(signal, now)
                next_signal += 1
        i += 1
        if progress_bar is not None and i % 4096 == 0:
            progress_bar.n = i
            progress_bar.refresh()
    if progress_bar is not None:
        progress_bar.n = n
        progress_bar.close()
    sessions = sorted({d for s in symbols for d in frames[s].loc[frames[s]["regular"], "session"]})
    return BacktestResult(
        mode="fast",
        symbols=list(symbols),
        sessions=sessions,
        bars=int(n),
        trades=ledger.records(),
        signals=ledger.signals,
        params=config.describe(),
        elapsed_sec=wall.perf_counter() - started,
    )


def _cross_at(arrays, sym_rank: int, ts_ns: int, bar_rank: int) -> bool:
    """Did the signal symbol's ema_20 cross below ema_50 on its latest bar processed so far
    (its bar of this minute counts when it comes first in the processing order)?"""
    times, cross = arrays
    side = "right" if sym_rank <= bar_rank else "left"
    j = int(np.searchsorted(times, ts_ns, side=side)) - 1
    return bool(cross[j]) if j >= 0 else False
