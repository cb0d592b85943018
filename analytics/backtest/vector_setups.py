"""The setups over whole columns (fast backtest): each one's vectorised evaluator, compiled from
the same definition as the per-bar evaluator the live path runs (`strategies.setups`), so no
setup formula is written here. Tests pin the two equal bar for bar.

- `setup_signals(frame, config, symbol=...)` -> {setup: SetupArrays(fire, stop, t1, t2)}:
  where each enabled setup fires (warm-up applied, before cooldown) and the levels it would
  give on every row (NaN where undefined).
- `setup_masks(features, symbol=, cfg=)`: the fire arrays alone.
`frame` is a feature frame of `strategies.features.compute_features` (rows outside the regular
session are never fired).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from strategies.config import StrategyConfig
from strategies.dsl.functions import Columns
from strategies.features.library import feature_kind, specs_for, vector_column


class SetupArrays(NamedTuple):
    fire: np.ndarray  # bool
    stop: np.ndarray  # float
    t1: np.ndarray
    t2: np.ndarray


def close_minutes_et(index: pd.DatetimeIndex) -> np.ndarray:
    """Minutes since midnight (New York) of each bar's close (= decision time)."""
    local = (index + pd.Timedelta(minutes=1)).tz_convert("America/New_York")
    return np.asarray(local.hour * 60 + local.minute, dtype=np.int64)


def _strategy(config) -> StrategyConfig:
    return getattr(config, "strategy", config)


def setup_columns(frame: pd.DataFrame, *, symbol: str, names) -> Columns:
    """The arrays `names` need over `frame`'s rows (all regular-session), library features
    computed from the frame's own columns."""
    wall = frame.index.tz_convert("America/New_York").tz_localize(None).as_unit("ns").asi8
    _, sess = np.unique(wall // 86_400_000_000_000, return_inverse=True)
    minute_col = "minute" if "minute" in frame else "session_minute"
    data = {c: frame[c].to_numpy(dtype=float) for c in frame.columns if _numeric(frame[c])}
    data["minute"] = frame[minute_col].to_numpy(dtype=float)
    base = {**data, "_sess": sess.astype(np.int64)}
    base["_pre_high"] = data.get("premarket_high", np.full(len(frame), np.nan))
    base["_pre_low"] = data.get("premarket_low", np.full(len(frame), np.nan))
    needed = [n for n in names if n not in data]
    for spec in specs_for(needed):
        missing = [c for c in ("open", "high", "low", "close", "volume") if c not in base]
        if missing:
            raise KeyError(f"fast mode needs columns {missing} to compute {spec.names}")
        data.update(vector_column(spec, base))
    for n in names:
        if feature_kind(n) == "bool":
            data[n] = np.asarray(data[n] == 1.0) if data[n].dtype != bool else data[n]
    return Columns(
        data=data,
        sess=sess.astype(np.int64),
        close_minute=571 + data["minute"].astype(np.int64),
        symbol=symbol,
    )


def _numeric(series: pd.Series) -> bool:
    return series.dtype.kind in "fiub"


def setup_signals(frame: pd.DataFrame, config, *, symbol: str) -> dict[str, SetupArrays]:
    """{setup: SetupArrays} of every enabled setup over `frame` (see module docstring)."""
    from strategies.setups.registry import programs_for

    cfg = _strategy(config)
    programs = programs_for(cfg)
    n = len(frame)
    regular = frame["in_session"].to_numpy(dtype=bool) if "in_session" in frame else None
    rows = np.flatnonzero(regular) if regular is not None else np.arange(n)
    sub = frame.iloc[rows] if regular is not None else frame
    names = set().union(*(p.features for p in programs)) if programs else set()
    cols = setup_columns(sub, symbol=symbol, names=names | {"close"})
    out = {}
    for p in programs:
        arrays = p.vector(cols)
        fire = np.zeros(n, dtype=bool)
        fire[rows] = arrays["fire"]
        levels = []
        for key in ("stop", "target_one", "target_two"):
            full = np.full(n, np.nan)
            full[rows] = arrays[key]
            levels.append(full)
        out[p.name] = SetupArrays(fire, *levels)
    return out


def setup_masks(
    features: pd.DataFrame, *, symbol: str, cfg: StrategyConfig
) -> dict[str, np.ndarray]:
    """setup name -> bool array: where that setup fires (before cooldown), for enabled setups."""
    return {k: v.fire for k, v in setup_signals(features, cfg, symbol=symbol).items()}
