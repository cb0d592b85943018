"""Per-process cache of feature engines, always consistent with the STORED bars.

An engine is warmed up from stored bars (enough calendar days to cover LOOKBACK_DAYS sessions of
volume profile and to let EMA/ATR seeds decay below 1e-12), then caught up bar by bar. A worker that
restarts mid-session, or that did not see the previous bar because another worker handled it,
reads the missing bars from the database, so every worker computes the same values.
Index symbols (keys of SYMBOL_EXECUTION_MAP, e.g. SPX) have no volume: their volume is the
execution proxy's volume at the same minute (0 when the proxy bar is not stored yet).
"""

from __future__ import annotations

import math
import threading
from datetime import datetime, timedelta

from marketdata.selectors import bars_as_data
from strategies.config import StrategyConfig
from strategies.features import FeatureEngine

_engines: dict[str, FeatureEngine] = {}
_lock = threading.Lock()
_MIN_WARMUP_DAYS = 45


def warmup_days(cfg: StrategyConfig) -> int:
    return max(math.ceil(cfg.lookback_days * 7 / 5) + 10, _MIN_WARMUP_DAYS)


def new_engine(symbol: str, cfg: StrategyConfig) -> FeatureEngine:
    return FeatureEngine(
        symbol,
        lookback_days=cfg.lookback_days,
        lookback_min=cfg.lookback_min,
        rvol_profile_min_sessions=cfg.rvol_profile_min_sessions,
    )


def _feed(engine: FeatureEngine, cfg: StrategyConfig, start: datetime, end: datetime) -> None:
    symbol = engine.symbol
    bars = bars_as_data(symbol=symbol, start=start, end=end)
    proxy = cfg.execution_map.get(symbol)
    proxy_volume: dict[datetime, float] | None = None
    if proxy and bars:
        proxy_volume = {
            b.ts: b.volume for b in bars_as_data(symbol=proxy, start=bars[0].ts, end=end)
        }
    for b in bars:
        if engine.last_ts is not None and b.ts <= engine.last_ts:
            continue
        volume = proxy_volume.get(b.ts, 0.0) if proxy_volume is not None else b.volume
        engine.update(b.ts, b.open, b.high, b.low, b.close, volume)


def engine_build(symbol: str, cfg: StrategyConfig, until: datetime) -> FeatureEngine:
    """A fresh engine warmed up from stored bars up to and including `until`."""
    engine = new_engine(symbol, cfg)
    _feed(engine, cfg, until - timedelta(days=warmup_days(cfg)), until)
    return engine


def features_at(symbol: str, bar_ts: datetime, cfg: StrategyConfig) -> dict | None:
    """Feature row of the stored bar (symbol, bar_ts); None when that bar is outside the regular
    session or not stored."""
    with _lock:
        engine = _engines.get(symbol)
        if engine is not None and engine.last_ts is not None and engine.last_ts <= bar_ts:
            if bar_ts - engine.last_ts > timedelta(days=warmup_days(cfg)):
                engine = None
            elif engine.last_ts < bar_ts:
                _feed(engine, cfg, engine.last_ts + timedelta(microseconds=1), bar_ts)
        elif engine is not None:
            # an older bar (late re-evaluation): answer from a temporary engine
            old = engine_build(symbol, cfg, bar_ts)
            return _row_if_at(old, bar_ts)
        if engine is None:
            engine = engine_build(symbol, cfg, bar_ts)
            _engines[symbol] = engine
        return _row_if_at(engine, bar_ts)


def _row_if_at(engine: FeatureEngine, bar_ts: datetime) -> dict | None:
    row = engine.last_row
    if row is not None and row["ts"] == bar_ts:
        return row
    return None


def engines_reset() -> None:
    """Forget every cached engine (tests; a 'restart')."""
    with _lock:
        _engines.clear()


def features_latest(symbol: str, until: datetime, cfg: StrategyConfig) -> dict | None:
    """Feature row of the latest stored regular-session bar at or before `until`."""
    with _lock:
        engine = _engines.get(symbol)
        if engine is None or engine.last_ts is None or engine.last_ts > until:
            engine = engine_build(symbol, cfg, until)
            if engine.last_ts is not None:
                _engines[symbol] = engine
        elif engine.last_ts < until:
            _feed(engine, cfg, engine.last_ts + timedelta(microseconds=1), until)
        return engine.last_row
