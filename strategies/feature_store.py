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

from marketdata.selectors import bars_as_data, bars_as_data_many
from marketdata.types import BarData
from strategies.config import StrategyConfig
from strategies.features import FeatureEngine

_engines: dict[str, FeatureEngine] = {}
_lock = threading.Lock()
_MIN_WARMUP_DAYS = 45


def warmup_days(cfg: StrategyConfig) -> int:
    return max(math.ceil(cfg.lookback_days * 7 / 5) + 10, _MIN_WARMUP_DAYS)


def new_engine(symbol: str, cfg: StrategyConfig) -> FeatureEngine:
    """An engine computing the base features, the library features the enabled setups name,
    and the setups' per-bar evaluations (`strategies.evaluation.SetupRunner`)."""
    from strategies.evaluation import SetupRunner, features_needed
    from strategies.features.library import FeatureLibrary
    from strategies.setups.registry import programs_for

    programs = programs_for(cfg)
    engine = FeatureEngine(
        symbol,
        lookback_days=cfg.lookback_days,
        lookback_min=cfg.lookback_min,
        rvol_profile_min_sessions=cfg.rvol_profile_min_sessions,
        library=FeatureLibrary(features_needed(programs)),
        on_row=SetupRunner(symbol, programs),
    )
    engine.signature = engine_signature(cfg, programs)
    return engine


def engine_signature(cfg: StrategyConfig, programs: list | None = None) -> tuple:
    """What a cached engine was built for: the setups (name, version) and the feature
    parameters; a different signature means a rebuild."""
    if programs is None:
        from strategies.setups.registry import programs_for

        programs = programs_for(cfg)
    return (
        tuple((p.name, p.version, p.cooldown_sec) for p in programs),
        cfg.lookback_days,
        cfg.lookback_min,
        cfg.rvol_profile_min_sessions,
        cfg,
    )


def _proxy_volumes(symbol: str, cfg: StrategyConfig, bars: list[BarData], end: datetime):
    proxy = cfg.execution_map.get(symbol)
    if not proxy or not bars:
        return None
    return {b.ts: b.volume for b in bars_as_data(symbol=proxy, start=bars[0].ts, end=end)}


def _feed(engine: FeatureEngine, cfg: StrategyConfig, start: datetime, end: datetime) -> None:
    bars = bars_as_data(symbol=engine.symbol, start=start, end=end)
    proxy_volume = _proxy_volumes(engine.symbol, cfg, bars, end)
    for b in bars:
        volume = proxy_volume.get(b.ts, 0.0) if proxy_volume is not None else b.volume
        engine.update(b.ts, b.open, b.high, b.low, b.close, volume)


def _catch_up(
    engine: FeatureEngine, cfg: StrategyConfig, end: datetime, stored: list[BarData] | None = None
) -> bool:
    """Feed the stored bars after the engine's last bar up to `end`. The read starts AT the last
    bar fed, to check it is still stored unchanged (same query, no extra round trip); returns
    False when it is not (storage was rewritten): the caller rebuilds. `stored`: the symbol's
    bars read already for a batch (`features_many`), covering the engine's last bar to `end`."""
    if stored is not None:
        bars = [b for b in stored if engine.last_ts <= b.ts <= end]
    else:
        bars = bars_as_data(symbol=engine.symbol, start=engine.last_ts, end=end)
    if not bars or bars[0].ts != engine.last_ts or bars[0].close != engine.last_close:
        return False
    proxy_volume = _proxy_volumes(engine.symbol, cfg, bars, end)
    for b in bars[1:]:
        volume = proxy_volume.get(b.ts, 0.0) if proxy_volume is not None else b.volume
        engine.update(b.ts, b.open, b.high, b.low, b.close, volume)
    return True


def engine_build(symbol: str, cfg: StrategyConfig, until: datetime) -> FeatureEngine:
    """A fresh engine warmed up from stored bars up to and including `until`."""
    engine = new_engine(symbol, cfg)
    _feed(engine, cfg, until - timedelta(days=warmup_days(cfg)), until)
    return engine


def features_at(
    symbol: str,
    bar_ts: datetime,
    cfg: StrategyConfig,
    *,
    stored: list[BarData] | None = None,
    signature: tuple | None = None,
) -> dict | None:
    """Feature row of the stored bar (symbol, bar_ts); None when that bar is outside the regular
    session or not stored. `stored`/`signature`: read once for a batch (`features_many`)."""
    with _lock:
        engine = _engines.get(symbol)
        if engine is not None and engine.last_ts is not None and engine.last_ts > bar_ts:
            # an older bar (late re-evaluation): answer from a temporary engine
            return _row_if_at(engine_build(symbol, cfg, bar_ts), bar_ts)
        usable = (
            engine is not None
            and getattr(engine, "signature", None) == (signature or engine_signature(cfg))
            and engine.last_ts is not None
            and bar_ts - engine.last_ts <= timedelta(days=warmup_days(cfg))
            and _catch_up(engine, cfg, bar_ts, stored)
        )
        if not usable:
            engine = engine_build(symbol, cfg, bar_ts)
            _engines[symbol] = engine
        return _row_if_at(engine, bar_ts)


def features_many(
    bars: list[tuple[str, datetime]], cfg: StrategyConfig
) -> dict[tuple[str, datetime], dict | None]:
    """`features_at` of every (symbol, bar_ts) of a batch, in the order given (a symbol's
    minutes in order), with ONE catch-up read for every symbol whose engine is warm (each from
    its engine's last bar) instead of one per bar. A cold engine, or a symbol whose volume
    comes from its execution proxy, reads as `features_at` does."""
    signature = engine_signature(cfg)
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for symbol, ts in bars:
        first[symbol] = min(ts, first.get(symbol, ts))
        last[symbol] = max(ts, last.get(symbol, ts))
    windows: dict[str, tuple[datetime, datetime]] = {}
    with _lock:
        for symbol, ts in first.items():
            engine = _engines.get(symbol)
            if (
                engine is not None
                and getattr(engine, "signature", None) == signature
                and engine.last_ts is not None
                and engine.last_ts <= ts
                and ts - engine.last_ts <= timedelta(days=warmup_days(cfg))
                and symbol not in cfg.execution_map
            ):
                windows[symbol] = (engine.last_ts, last[symbol])
    stored = bars_as_data_many(windows)
    return {
        (symbol, ts): features_at(symbol, ts, cfg, stored=stored.get(symbol), signature=signature)
        for symbol, ts in bars
    }


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
        if (
            engine is None
            or getattr(engine, "signature", None) != engine_signature(cfg)
            or engine.last_ts is None
            or engine.last_ts > until
            or not _catch_up(engine, cfg, until)
        ):
            engine = engine_build(symbol, cfg, until)
            if engine.last_ts is not None:
                _engines[symbol] = engine
        return engine.last_row
