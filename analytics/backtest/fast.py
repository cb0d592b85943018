"""Fast backtest: vectorised features and setup conditions, then a sequential pass that visits
only the bars where a trade is alive.

1. `strategies.features.compute_features` (the engine's vectorised twin) per symbol;
2. the setups as boolean arrays (`vector_setups`) and the per-setup cooldown over the fired
   bars only;
3. the trade lifecycles, in the live processing order (time, then symbol), by one of two
   engines that apply the same rules:
   - "kernel": `kernel.lifecycle_kernel`, integer cents, compiled with numba; levels come from
     the setups' own formulas rounded like the execution map;
   - "ledger": the live bar step (`trading.core.step.bar_step`) over the in-memory ledger of
     the event mode (`memory_ledger.MemoryLedger`), with each kept bar's levels from the live
     setup function itself; used for what the kernel does not cover (see kernel_unsupported).
Bars of a symbol with no working order and no open trade are skipped; when nothing is alive the
pass jumps to the next signal. The trade list equals the event-driven mode's (tests pin it on
synthetic and real sessions, for both engines).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import time as wall
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal

import numpy as np
import pandas as pd

from analytics.backtest.config import BacktestConfig
from analytics.backtest.event import (
    _prices,
    memory_ledger_for,
    merged_bars,
    step_context,
    symbol_params_for,
)
from analytics.backtest.result import BacktestResult
from analytics.backtest.strategy_driver import PriceLookup, fired_levels
from analytics.backtest.vector_setups import setup_masks, setup_signals
from strategies.evaluation import cooldown_of
from strategies.features import compute_features
from strategies.features.columns import ROW_COLUMNS
from strategies.features.sessions import bar_close_et
from strategies.setups import SETUPS, SetupContext
from trading.core.step import bar_step, clock_end, clock_until

CENT = Decimal("0.01")

BAR = timedelta(minutes=1)


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
    from analytics.backtest.kernel import cooldown_kernel

    if cooldown_sec <= 0 or ts_ns.size == 0:
        return np.arange(ts_ns.size)
    return cooldown_kernel(np.ascontiguousarray(ts_ns, dtype=np.int64), cooldown_sec * 10**9)


def _row(arrays: dict, i: int, close: float, ts) -> dict:
    row = {name: float(arrays[name][i]) for name in ROW_COLUMNS}
    row["close"] = close
    row["ts"] = ts
    return row


def _run_fast_ledger(
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
            for j in cooldown_keep(ts_ns[fired_idx], cooldown_of(name, cfg)):
                i = int(fired_idx[j])
                ts = times[i].to_pydatetime()
                row = _row(arrays, i, float(closes[i]), ts)
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

    # 3: the sequential pass over trade lifecycles, each kept bar through the live bar step
    params = symbol_params_for(exec_symbols, config, use_db=use_db_params)
    ledger = memory_ledger_for(config, params, frames)
    bars = merged_bars(frames)
    g_ts = bars["ts_ns"].to_numpy()
    g_rank = bars["rank"].to_numpy()
    g_sym = bars["symbol"].to_numpy()
    g_val = bars[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float)
    # python datetimes once for every bar (indexing the DatetimeIndex per stepped bar and
    # boxing each value cost ~2 s of a year's run)
    g_time = pd.DatetimeIndex(bars.index).to_pydatetime()
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
    here = {"i": 0}  # the bar being stepped (read by the cross-down lookup)

    def cross_down(sym: str) -> bool:
        j = here["i"]
        return _cross_at(cross_arrays[sym], rank[sym], g_ts[j], rank[g_sym[j]])

    ctx = step_context(config, params, cross_down)
    clock = None  # the latest minute boundary the clock reached
    while i < n:
        active = ledger.live or any(ledger.orders_by_symbol.values())
        if not active:
            if next_signal >= len(signal_pos):
                break
            i = int(signal_pos[next_signal])  # nothing alive: jump to the next signal
        else:  # the clock between bars, as the event mode runs it (nothing alive: a no-op)
            clock = clock_until(ledger, last=clock, until=g_time[i], ctx=ctx)
        if not active:
            clock = g_time[i]
        symbol = g_sym[i]
        k = int(key[i])
        is_signal_bar = next_signal < len(signal_keys) and signal_keys[next_signal] == k
        if ledger.has_orders(symbol) or ledger.has_live(symbol) or is_signal_bar:
            fired = by_bar[k] if is_signal_bar else []
            if is_signal_bar:
                next_signal += 1
            here["i"] = i
            o, h, lo, c, v = g_val[i].tolist()
            bar_step(
                ledger,
                symbol=symbol,
                ts=g_time[i],
                bar=lambda o=o, h=h, lo=lo, c=c, v=v: _prices(o, h, lo, c, v),
                strategy=lambda fired=fired: ledger.candidates(fired) if fired else [],
                ctx=ctx,
            )
        i += 1
        if progress_bar is not None and i % 4096 == 0:
            progress_bar.n = i
            progress_bar.refresh()
    if progress_bar is not None:
        progress_bar.n = n
        progress_bar.close()
    if n and ledger.anything_alive():
        last_ts = g_time[n - 1]
        clock_until(ledger, last=clock, until=clock_end(last_ts, ctx), ctx=ctx)
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
        state_changes=ledger.state_changes,
    )


def _cross_at(arrays, sym_rank: int, ts_ns: int, bar_rank: int) -> bool:
    """Did the signal symbol's ema_20 cross below ema_50 on its latest bar processed so far
    (its bar of this minute counts when it comes first in the processing order)?"""
    times, cross = arrays
    side = "right" if sym_rank <= bar_rank else "left"
    j = int(np.searchsorted(times, ts_ns, side=side)) - 1
    return bool(cross[j]) if j >= 0 else False


# --- the kernel path -------------------------------------------------------------------------
PCT_DEN = 10_000  # fractions of equity the kernel takes exactly: four decimals
MAX_CASH_USD = Decimal("1000000000")  # int64 headroom of the kernel's cap arithmetic
MAX_RISK_USD = Decimal("1000000")  # and of its risk size (1e-12 USD per share)


def kernel_unsupported(frames, config: BacktestConfig, symbols, params: dict) -> str:
    """Why the integer kernel cannot run this configuration ('' when it can)."""
    cfg, risk, costs = config.strategy, config.risk, config.costs
    model = costs.model
    if any(cfg.execution_symbol(s) != s for s in symbols):
        return "a symbol executes in another (index -> ETF)"
    if risk.trail_pct or risk.stop_pct or risk.tp_pct:
        return "trailing stops or percent brackets"
    if costs.volume_cap_pct > 0:
        return "volume-capped (partial) fills"
    if risk.resting_targets:
        return "resting targets (RESTING_TARGETS: OCO pairs at the broker)"
    if config.policy_book is not None:
        return "session policies"
    if risk.costs != model:
        return "the risk rules' cost model differs from the fill model"
    if model.tick_usd != CENT:
        return "COST_TICK_USD is not 0.01 (the kernel's prices are whole cents)"
    if model.spread_bps or model.slippage_bps:
        return "costs in bps of the price (PAPER_SPREAD_BPS / PAPER_SLIPPAGE_BPS)"
    if risk.max_daily_loss_usd != risk.daily_loss_limit_usd:
        return "a daily loss limit in R not folded into RISK_MAX_DAILY_LOSS_USD"
    for symbol, p in params.items():
        if any(v is not None for v in (p.qty, p.stop_pct, p.tp_pct, p.trail_pct, p.trail_act_pct,
                                        p.window_start, p.max_notional_usd)):  # fmt: skip
            return f"per-symbol overrides for {symbol}"
        if p.costs != model:
            return f"a per-symbol cost model for {symbol}"
    for name, value, scale in (
        ("RISK_PER_TRADE_USD", risk.risk_per_trade_usd, 100),
        ("RISK_MAX_ORDER_NOTIONAL_USD", risk.max_order_notional_usd, 100),
        ("MIN_CASH_USD", risk.min_cash_usd, 100),
        ("PAPER_STARTING_CASH_USD", config.starting_cash, 100),
        ("RISK_MAX_DAILY_LOSS_USD (R folded in)", risk.max_daily_loss_usd, 100),
        ("RISK_MAX_ORDER_NOTIONAL_PCT", risk.max_order_notional_pct, PCT_DEN),
        ("RISK_MAX_SYMBOL_EXPOSURE_PCT", risk.max_symbol_exposure_pct, PCT_DEN),
        ("RISK_MAX_GROSS_EXPOSURE_PCT", risk.max_gross_exposure_pct, PCT_DEN),
        ("COST_COMMISSION_PER_SHARE_USD", model.commission_per_share_usd, 10**6),
        ("COST_COMMISSION_PER_ORDER_USD", model.commission_per_order_usd, 10**6),
        ("COST_SEC_FEE_PER_MILLION", model.sec_fee_per_million, 10**4),
        ("COST_TAF_PER_SHARE_USD", model.taf_per_share_usd, 10**6),
        ("COST_TAF_MAX_USD", model.taf_max_usd, 10**6),
    ):
        scaled = Decimal(value) * scale
        if scaled != scaled.to_integral_value() or scaled < 0:
            return f"{name} is not a whole number of 1/{scale} USD (the kernel's exact scale)"
    if config.starting_cash > MAX_CASH_USD:
        return f"PAPER_STARTING_CASH_USD above {MAX_CASH_USD} (int64 headroom)"
    if risk.risk_per_trade_usd > MAX_RISK_USD:
        return f"RISK_PER_TRADE_USD above {MAX_RISK_USD} (int64 headroom of the risk size)"
    for symbol, frame in frames.items():
        prices = frame[["open", "high", "low", "close"]].to_numpy(dtype=float) * 100
        if prices.size and np.abs(prices - np.rint(prices)).max() > 1e-6:
            return f"{symbol} has sub-cent prices"
    for symbol, frame in frames.items():
        missing = _session_minutes_missing(frame.index, config)
        if missing:
            return (
                f"{symbol} has no bar at {missing} (the kernel's clock is the symbol's bars; "
                "the core's clock rules fire without them)"
            )
    return ""


def _session_minutes_missing(index: pd.DatetimeIndex, config: BacktestConfig):
    """The first regular-session minute, from the open through two minutes after the flat
    time, of a session day in the data that has no bar (None when every one has): there the
    core's clock step fires exits and fills the kernel would wait for a bar to apply."""
    if not len(index):
        return None
    ns = index.as_unit("ns").asi8
    days, _ = _day_groups(ns)
    table = _session_tables(days, config)
    minute = 60_000_000_000
    starts, counts = [], []
    for day in days:
        open_ns, close_ns, _, _, flat_ns = table[day]
        if open_ns >= 0:
            starts.append(open_ns)
            counts.append(max(0, -(-(min(flat_ns + 2 * minute, close_ns) - open_ns) // minute)))
    if not starts:
        return None
    counts = np.asarray(counts, dtype=np.int64)
    # every expected minute, day after day: each day's open repeated, plus 0, 1, 2... minutes
    first = np.cumsum(counts) - counts
    offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(first, counts)
    expected = np.repeat(np.asarray(starts, dtype=np.int64), counts) + offsets * minute
    order = ns if np.all(ns[1:] >= ns[:-1]) else np.sort(ns)
    pos = np.minimum(np.searchsorted(order, expected), order.size - 1)
    absent = np.flatnonzero(order[pos] != expected)
    if absent.size:
        return pd.Timestamp(int(expected[absent[0]]), tz="UTC").isoformat()
    return None


def _groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True), in one pass when `values` are already sorted
    (bar times are: no sort of the whole array then)."""
    if values.size and np.all(values[1:] >= values[:-1]):
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        inverse = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, values.size]))
        return values[starts], inverse
    return np.unique(values, return_inverse=True)


def _ny_day_numbers(ns: np.ndarray) -> np.ndarray:
    """New York calendar date of each UTC instant, as days since 1970-01-01 (vectorised).
    New York's offset is a whole number of hours, so every instant of one UTC hour has the
    same New York date: only the distinct hours go through the timezone conversion."""
    hours, inverse = _groups(ns // 3_600_000_000_000)
    wall = pd.DatetimeIndex(hours * 3_600_000_000_000, tz="UTC").tz_convert("America/New_York")
    return (wall.tz_localize(None).as_unit("ns").asi8 // 86_400_000_000_000)[inverse]


def _day_groups(ns: np.ndarray) -> tuple[list[date], np.ndarray]:
    """(distinct New York dates, index of each instant's date in that list)."""
    unique, inverse = _groups(_ny_day_numbers(ns))
    epoch = date(1970, 1, 1)
    return [epoch + timedelta(days=int(d)) for d in unique], inverse


def engine_session_mask(index: pd.DatetimeIndex) -> np.ndarray:
    """The bars the feature engine uses (strategies.features.sessions): 09:30 New York up to
    the close (early closes from the calendar; every other day, holidays and weekends included,
    gets the regular geometry)."""
    from strategies.features.sessions import session_day

    ns = index.as_unit("ns").asi8
    days, idx = _day_groups(ns)
    geometry = [session_day(d) for d in days]
    opens = np.array([pd.Timestamp(g.open_utc).value for g in geometry], dtype=np.int64)
    lengths = np.array([g.minutes for g in geometry], dtype=np.int64)
    minute = (ns - opens[idx]) // 60_000_000_000
    return (minute >= 0) & (minute < lengths[idx])


def _cents(values: np.ndarray) -> np.ndarray:
    """What `Decimal(repr(v)).quantize(Decimal('0.01'), ROUND_HALF_UP)` gives, in cents;
    near-ties go through Decimal itself."""
    from decimal import ROUND_HALF_UP, Decimal

    scaled = values * 100.0
    low = np.floor(scaled)
    frac = scaled - low
    out = (low + (frac > 0.5)).astype(np.int64)
    for j in np.flatnonzero(np.abs(frac - 0.5) < 1e-6):
        exact = Decimal(repr(float(values[j]))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        out[j] = int(exact * 100)
    return out


def _session_tables(day_keys, config: BacktestConfig):
    """Per New York date: (open, close, window start, window end, flat time) in ns; -1 when
    the date has no session."""
    risk = config.risk
    return {
        day: _session_row(day, risk.window_start, risk.window_end, config.flatten_before_close_min)
        for day in day_keys
    }


@functools.lru_cache(maxsize=8192)
def _session_row(day: date, window_start, window_end, flatten_min: int) -> tuple:
    """One date of `_session_tables` (cached: every run and every symbol asks the same days)."""
    from risk.calendar import session_for, trading_window

    session = session_for(day)
    if session is None:
        return (-1, -1, -1, -1, -1)
    w_start, w_end = trading_window(session, window_start, window_end)
    flat = session.close - timedelta(minutes=flatten_min)
    return tuple(pd.Timestamp(t).value for t in (session.open, session.close, w_start, w_end, flat))


def _run_fast_kernel(frames, config: BacktestConfig, *, symbols, params, started, progress):
    from analytics.backtest.kernel import BIT_HALTED, REASONS, lifecycle_kernel
    from analytics.backtest.result import ExitLeg, SignalRecord, TradeRecord

    cfg, risk = config.strategy, config.risk
    rank = {s: r for r, s in enumerate(frames)}
    setup_order = {name: k for k, name in enumerate(cfg.enabled_setups)}

    # merged bars in the live processing order, with the per-bar facts the rules read
    parts = []
    sig_parts = []
    for symbol, frame in frames.items():
        regular = engine_session_mask(frame.index)
        reg_idx = np.flatnonzero(regular)
        cross = np.zeros(len(frame), dtype=bool)
        part = pd.DataFrame(
            {
                "ts": frame.index.as_unit("ns").asi8,
                "rank": rank[symbol],
                "o": np.rint(frame["open"].to_numpy() * 100).astype(np.int64),
                "h": np.rint(frame["high"].to_numpy() * 100).astype(np.int64),
                "l": np.rint(frame["low"].to_numpy() * 100).astype(np.int64),
                "c": np.rint(frame["close"].to_numpy() * 100).astype(np.int64),
            }
        )
        if symbol in symbols and reg_idx.size:
            feats = features_for(symbol, {symbol: frame.iloc[reg_idx]}, config)
            close = frame["close"].to_numpy(dtype=float)[reg_idx]
            e20 = feats["ema_20"].to_numpy(dtype=float)
            e50 = feats["ema_50"].to_numpy(dtype=float)
            prev_regular = np.r_[False, regular[:-1]][reg_idx]
            with np.errstate(invalid="ignore"):
                cross[reg_idx] = (
                    prev_regular
                    & (np.r_[np.nan, e20[:-1]] >= np.r_[np.nan, e50[:-1]])
                    & (e20 < e50)
                )
            arrays = setup_signals(feats.assign(close=close), cfg, symbol=symbol)
            ts_reg = part["ts"].to_numpy()[reg_idx]
            for name, setup in arrays.items():
                fired = np.flatnonzero(setup.fire)
                kept = fired[cooldown_keep(ts_reg[fired], cooldown_of(name, cfg))]
                if not kept.size:
                    continue
                sig_parts.append(
                    pd.DataFrame(
                        {
                            "ts": ts_reg[kept],
                            "rank": rank[symbol],
                            "setup": setup_order[name],
                            "entry": _cents(close[kept]),
                            "stop": _cents(setup.stop[kept]),
                            "t1": _cents(setup.t1[kept]),
                            "t2": _cents(setup.t2[kept]),
                        }
                    )
                )
        part["cross"] = cross
        parts.append(part)
    bars = pd.concat(parts, ignore_index=True).sort_values(["ts", "rank"], kind="stable")
    g_ts = bars["ts"].to_numpy(np.int64)
    g_rank = bars["rank"].to_numpy(np.int64)
    unique_days, day_idx = _day_groups(g_ts + 60_000_000_000)
    table = _session_tables(unique_days, config)
    day_arr = np.array([table[d] for d in unique_days], dtype=np.int64).reshape(-1, 5)
    g_flat = day_arr[day_idx, 4]

    sigs = (
        pd.concat(sig_parts, ignore_index=True).sort_values(["ts", "rank", "setup"], kind="stable")
        if sig_parts
        else pd.DataFrame(columns=["ts", "rank", "setup", "entry", "stop", "t1", "t2"])
    )
    s_ts = sigs["ts"].to_numpy(np.int64)
    s_rank = sigs["rank"].to_numpy(np.int64)
    key = (g_ts // 1_000_000_000) * 64 + g_rank
    s_g = np.searchsorted(key, (s_ts // 1_000_000_000) * 64 + s_rank).astype(np.int64)
    # window and symbol rules (the same calendar functions the risk rules use)
    s_now = s_ts + 60_000_000_000
    s_day = day_arr[day_idx[s_g]] if len(s_g) else np.zeros((0, 5), np.int64)
    holiday = s_day[:, 0] < 0
    closed = ~holiday & ~((s_day[:, 0] <= s_now) & (s_now < s_day[:, 1]))
    window = ~holiday & ~((s_day[:, 2] <= s_now) & (s_now <= s_day[:, 3]))
    names = list(frames)
    symbol_codes = {}
    for symbol in symbols:
        codes = []
        if risk.whitelist and symbol not in risk.whitelist:
            codes.append("SYMBOL_NOT_WHITELISTED")
        if symbol in risk.blacklist:
            codes.append("SYMBOL_BLACKLISTED")
        if not params[symbol].enabled:
            codes.append("SYMBOL_DISABLED")
        symbol_codes[rank[symbol]] = codes
    s_pre_ok = ~(holiday | closed | window) & np.array(
        [not symbol_codes[r] for r in s_rank], dtype=bool
    )
    rules = _signal_rules(sigs, names, params, config)
    closes = bars["c"].to_numpy(np.int64)
    day_now = _ny_day_numbers(g_ts + 60_000_000_000)
    day_bar = _ny_day_numbers(g_ts)
    first_day = int(min(day_now.min(), day_bar.min())) if len(g_ts) else 0
    g_next_open = (
        _next_opens(day_now) if risk.max_daily_loss_usd > 0 else np.full(len(g_ts), -1, np.int64)
    )
    out = lifecycle_kernel(
        g_rank.copy(), g_ts, bars["o"].to_numpy(np.int64), bars["h"].to_numpy(np.int64),
        bars["l"].to_numpy(np.int64), closes, g_flat, bars["cross"].to_numpy(bool),
        (day_bar - first_day).astype(np.int64), (day_now - first_day).astype(np.int64),
        g_next_open, s_g, s_rank, sigs["setup"].to_numpy(np.int64),
        sigs["entry"].to_numpy(np.int64), sigs["stop"].to_numpy(np.int64), rules["stop"],
        sigs["t1"].to_numpy(np.int64), sigs["t2"].to_numpy(np.int64), s_pre_ok,
        rules["fill"], rules["limit"], rules["t1_ok"],
        _kernel_settings(config, n_symbols=len(names), n_setups=len(setup_order)),
    )  # fmt: skip
    (s_ok, s_qty, s_bits, st, qty, entry_px, entry_g, legs, leg_g, leg_qty, leg_px, leg_reason,
     fees_c, realized_c, events) = out  # fmt: skip
    signals, trades = [], []
    setups = list(cfg.enabled_setups)
    s_times = pd.DatetimeIndex(s_ts, tz="UTC").to_pydatetime().tolist()
    closed_legs = leg_g[st == 3]
    used = np.unique(np.concatenate([entry_g[st == 3], closed_legs[closed_legs >= 0]]))
    time_of = dict(zip(used.tolist(), pd.DatetimeIndex(g_ts[used], tz="UTC").to_pydatetime(),
                       strict=True))  # fmt: skip
    # plain Python values: indexing numpy scalars one by one is the slow part of this loop
    s_rank_l, s_setup_l = s_rank.tolist(), sigs["setup"].to_numpy(np.int64).tolist()
    s_ok_l, s_qty_l, s_bits_l, st_l = s_ok.tolist(), s_qty.tolist(), s_bits.tolist(), st.tolist()
    holiday_l, closed_l, window_l = holiday.tolist(), closed.tolist(), window.tolist()
    levels_l = (
        np.column_stack([rules["stop"], sigs[["t1", "t2"]].to_numpy(np.int64)]) / 100.0
    ).tolist()
    fees_l, realized_l = fees_c.tolist(), realized_c.tolist()
    reason_bits = _reason_bits()
    entry_g_l, entry_px_l, qty_l, legs_l = (
        entry_g.tolist(), entry_px.tolist(), qty.tolist(), legs.tolist(),
    )  # fmt: skip
    leg_g_l, leg_qty_l, leg_px_l = leg_g.tolist(), leg_qty.tolist(), leg_px.tolist()
    leg_reason_l = leg_reason.tolist()
    for k in range(len(s_ts)):
        symbol = names[s_rank_l[k]]
        setup = setups[s_setup_l[k]]
        bar_ts = s_times[k]
        if s_ok_l[k]:
            signals.append(SignalRecord(symbol, setup, bar_ts, "dry_run", [], s_qty_l[k]))
        else:
            bits = s_bits_l[k]
            codes = ["TRADING_HALTED"] if bits & BIT_HALTED else []
            if holiday_l[k]:
                codes.append("MARKET_HOLIDAY")
            if closed_l[k]:
                codes.append("MARKET_CLOSED")
            if window_l[k]:
                codes.append("WINDOW_CLOSED")
            codes += symbol_codes[s_rank_l[k]]
            codes += [code for bit, code in reason_bits if bits & bit]
            signals.append(SignalRecord(symbol, setup, bar_ts, "risk_blocked", codes, s_qty_l[k]))
        if st_l[k] != 3:
            continue
        stop, t1, t2 = levels_l[k]
        record = TradeRecord(
            symbol=symbol,
            execution_symbol=symbol,
            setup=setup,
            signal_ts=bar_ts,
            entry_ts=time_of[entry_g_l[k]],
            entry_price=entry_px_l[k] / 100,
            qty=qty_l[k],
            stop=stop,
            target_one=t1,
            target_two=t2,
        )
        for n_leg in range(legs_l[k]):
            record.legs.append(
                ExitLeg(
                    ts=time_of[leg_g_l[k][n_leg]],
                    qty=leg_qty_l[k][n_leg],
                    price=leg_px_l[k][n_leg] / 100,
                    reason=REASONS[leg_reason_l[k][n_leg]],
                )
            )
        # the P&L in exact cents, fees included, as the ledger books it (Decimal) in the core
        record.fees = fees_l[k] / 100
        record.realized = realized_l[k] / 100
        trades.append(record)
    sessions = sorted(
        set().union(
            *(
                pd.unique(frames[s]["session"].to_numpy()[frames[s]["regular"].to_numpy()])
                for s in symbols
            )  # fmt: skip
        )
    )
    result = BacktestResult(
        mode="fast",
        symbols=list(symbols),
        sessions=sessions,
        bars=int(len(bars)),
        trades=trades,
        signals=signals,
        params={**config.describe(), "engine": "kernel"},
        elapsed_sec=wall.perf_counter() - started,
        state_changes=_state_changes(events, config),
    )
    return result


def _reason_bits():
    """(bit, code) of the risk codes a kernel signal may fail after the calendar and symbol
    ones, in the order risk.rules.evaluate checks them (TRADING_HALTED is listed first)."""
    from analytics.backtest.kernel import BIT_CODES

    return tuple((1 << b, code) for b, code in enumerate(BIT_CODES) if code != "TRADING_HALTED")


def _scaled(value, scale) -> int:
    """An exact Decimal setting as an integer at `scale` (kernel_unsupported checked it)."""
    return int(Decimal(value) * scale)


def _kernel_settings(config: BacktestConfig, *, n_symbols: int, n_setups: int) -> np.ndarray:
    """The kernel's settings array: every amount exact at its scale (kernel.PARAMS)."""
    from analytics.backtest.kernel import kernel_params

    risk, model = config.risk, config.costs.model
    pct = risk.partial_exit_pct.as_integer_ratio()
    # market fills move whole cents from a whole-cent price (COST_TICK_USD 0.01): the
    # adverse part rounded up to the cent is the whole of CostModel.market_fill's rounding
    adverse = (model.adverse_usd / CENT).to_integral_value(rounding=ROUND_CEILING)
    return kernel_params(
        n_symbols=n_symbols,
        n_setups=n_setups,
        max_concurrent=risk.max_concurrent,
        max_open_orders=risk.max_open_orders,
        max_pos_symbol=risk.max_positions_per_symbol,
        order_cap_x=_scaled(risk.max_order_notional_usd, 10_000 * PCT_DEN),
        order_pct=_scaled(risk.max_order_notional_pct, PCT_DEN),
        symbol_pct=_scaled(risk.max_symbol_exposure_pct, PCT_DEN),
        gross_pct=_scaled(risk.max_gross_exposure_pct, PCT_DEN),
        pct_den=PCT_DEN,
        min_cash=_scaled(risk.min_cash_usd, 100),
        cash0=_scaled(config.starting_cash, 100),
        adv=int(adverse),
        comm_ps=_scaled(model.commission_per_share_usd, 10**6),
        comm_po=_scaled(model.commission_per_order_usd, 10**6),
        sec=_scaled(model.sec_fee_per_million, 10**4),
        taf=_scaled(model.taf_per_share_usd, 10**6),
        taf_max=_scaled(model.taf_max_usd, 10**6),
        limit_timeout=int(risk.entry_limit_timeout_sec * 1e9),
        timeout=risk.trade_timeout_min * 60_000_000_000,
        partial_num=pct[0],
        partial_den=pct[1],
        worst=bool(config.worst_case),
        risk=_scaled(risk.risk_per_trade_usd, 100),
        daily_limit=_scaled(risk.max_daily_loss_usd, 100),
        duplicate=bool(risk.duplicate_exposure),
        idea_window=risk.idea_window_sec * 1_000_000_000,
    )


def _signal_rules(sigs: pd.DataFrame, names: list[str], params: dict, config: BacktestConfig):
    """What the risk rules and entry planning decide from a signal alone, by their own
    functions, for every kept signal: the stop widened to the minimum distance
    (`risk.sizing.min_stop_distance` / `stop_floored`, as `risk.rules` calls them: the core's
    intent passes no ATR), the expected fill (`CostModel.market_fill`), T1 against the round
    trip's costs (`risk.sizing.target_clears_costs`) and the entry order
    (`trading.core.entries.entry_plan` on the paper quote: the pegged limit's price, or -1 for
    a market entry). Each is computed once per distinct input (prices repeat)."""
    from risk.sizing import min_stop_distance, stop_floored, target_clears_costs
    from trading.brokers.paper import paper_quote
    from trading.core.entries import entry_plan

    risk = config.risk
    m = len(sigs)
    ranks = sigs["rank"].to_numpy(np.int64).tolist()
    entries = sigs["entry"].to_numpy(np.int64).tolist()
    stops = sigs["stop"].to_numpy(np.int64).tolist()
    targets = sigs["t1"].to_numpy(np.int64).tolist()
    floors = {}
    priced: dict = {}  # (rank, entry) -> (fill, limit)
    floored: dict = {}  # (rank, entry, stop) -> stop
    cleared: dict = {}  # (rank, entry, t1) -> T1 clears the costs
    out_stop, out_fill, out_limit, out_t1 = [], [], [], []
    gate = risk.min_t1_cost_multiple > 0
    for k in range(m):
        symbol = names[ranks[k]]
        model = params[symbol].costs
        key = (ranks[k], entries[k])
        entry = Decimal(entries[k]) / 100
        if key not in priced:
            order_type, limit, _ = entry_plan(
                side="buy", ref_price=entry, quote=paper_quote(symbol, entry, model), config=risk
            )
            fill = model.market_fill("buy", entry)
            priced[key] = (int(fill * 100), int(limit * 100) if order_type == "limit" else -1)
        stop_key = key + (stops[k],)
        if stop_key not in floored:
            if symbol not in floors:
                p = params[symbol]
                floors[symbol] = min_stop_distance(
                    atr=None, costs=model, k_atr=p.min_stop_atr, n_ticks=p.min_stop_ticks,
                    m_spreads=p.min_stop_spreads,
                )  # fmt: skip
            stop = Decimal(stops[k]) / 100
            if stop < entry:
                stop = stop_floored(entry=entry, stop=stop, floor=floors[symbol],
                                    tick=model.tick_usd)  # fmt: skip
            floored[stop_key] = int(stop * 100)
        ok = True
        if gate and targets[k] >= 0:
            t1_key = key + (targets[k],)
            if t1_key not in cleared:
                cleared[t1_key], _ = target_clears_costs(
                    entry=entry, target=Decimal(targets[k]) / 100, costs=model,
                    multiple=risk.min_t1_cost_multiple,
                )  # fmt: skip
            ok = cleared[t1_key]
        fill_c, limit_c = priced[key]
        out_stop.append(floored[stop_key])
        out_fill.append(fill_c)
        out_limit.append(limit_c)
        out_t1.append(ok)
    return {
        "stop": np.array(out_stop, np.int64),
        "fill": np.array(out_fill, np.int64),
        "limit": np.array(out_limit, np.int64),
        "t1_ok": np.array(out_t1, bool),
    }


def _next_opens(day_numbers: np.ndarray) -> np.ndarray:
    """Per instant (by its New York date, days since 1970-01-01): the next trading day's
    open in ns (`risk.calendar.next_day_open`, where a daily-loss halt lifts); -1 if none."""
    days, inverse = _groups(day_numbers)
    epoch = date(1970, 1, 1)
    opens = np.array([_next_open_ns(epoch + timedelta(days=int(d))) for d in days], np.int64)
    return opens[inverse] if len(days) else np.zeros(0, np.int64)


@functools.lru_cache(maxsize=8192)
def _next_open_ns(day: date) -> int:
    from datetime import datetime

    from risk.calendar import NY, next_day_open

    found = next_day_open(datetime(day.year, day.month, day.day, 12, tzinfo=NY))
    return -1 if found is None else pd.Timestamp(found).value


def _state_changes(events: np.ndarray, config: BacktestConfig) -> list:
    """The kernel's halts and lifts as the memory ledger records them (StateChange)."""
    from analytics.backtest.result import StateChange
    from risk.calendar import next_day_open

    out = []
    limit = config.risk.max_daily_loss_usd
    for kind, at_ns, pnl in events.tolist():
        at = pd.Timestamp(at_ns, tz="UTC").to_pydatetime()
        if kind == 1:
            reason = f"daily loss limit: day P&L {Decimal(pnl) / 100:.2f} <= -{limit}"
            out.append(StateChange(at, "ACTIVE", "HALTED", reason))
            resume = next_day_open(at)
        else:
            reason = f"daily loss halt lifted at the session open {resume}"
            out.append(StateChange(at, "HALTED", "ACTIVE", reason))
    return out


@contextlib.contextmanager
def _gc_paused():
    """No cyclic garbage collection while tens of thousands of result objects are built: each
    collection would walk every live object (the frames' date columns included). Reference
    counting still frees everything; collection resumes afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_fast(
    frames: dict[str, pd.DataFrame],
    config: BacktestConfig,
    *,
    symbols: list[str],
    use_db_params: bool = False,
    progress: bool = False,
    engine: str = "auto",
) -> BacktestResult:
    """Fast mode. `engine`: "kernel" (integer lifecycle kernel), "ledger" (the in-memory paper
    ledger over lifecycle bars), or "auto" (the kernel when the configuration allows)."""
    started = wall.perf_counter()
    cfg = config.strategy
    exec_symbols = sorted({cfg.execution_symbol(s) for s in symbols})
    missing = [s for s in exec_symbols if s not in frames]
    if missing:
        raise ValueError(f"no bars for execution symbol(s) {', '.join(missing)}")
    params = symbol_params_for(exec_symbols, config, use_db=use_db_params)
    why = kernel_unsupported(frames, config, symbols, params) if engine != "ledger" else "asked"
    if engine == "kernel" and why:
        raise ValueError(f"the fast kernel cannot run this configuration: {why}")
    if not why:
        with _gc_paused():
            return _run_fast_kernel(
                frames, config, symbols=symbols, params=params, started=started, progress=progress
            )
    result = _run_fast_ledger(
        frames, config, symbols=symbols, use_db_params=use_db_params, progress=progress
    )
    result.params = {**result.params, "engine": "ledger", "engine_reason": why}
    return result
