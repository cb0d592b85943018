"""One backtest from a data source to a result (and, on request, a stored BacktestRun)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from analytics.backtest.config import BacktestConfig
from analytics.backtest.event import run_event
from analytics.backtest.fast import run_fast
from analytics.backtest.result import BacktestResult
from analytics.bars import bars_frame_from_db, bars_frame_from_file

log = logging.getLogger(__name__)
NY = ZoneInfo("America/New_York")
MODES = ("event", "fast")


@dataclass(frozen=True)
class DataSpec:
    """Where bars come from: `db` (stored bars) or a CSV/Parquet file (one symbol); `tz` is
    the file's timezone when its times carry no offset (refused otherwise)."""

    source: str
    symbols: tuple[str, ...]
    start: date | None = None
    end: date | None = None
    tz: str | None = None

    def describe(self) -> dict:
        return {
            "data": self.source,
            "symbols": list(self.symbols),
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }


def _bounds(spec: DataSpec) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(spec.start, time(0), NY) if spec.start else None
    end = datetime.combine(spec.end + timedelta(days=1), time(0), NY) if spec.end else None
    return start, end


def frames_load(spec: DataSpec, config: BacktestConfig) -> dict[str, pd.DataFrame]:
    """Bars of the signal symbols and of their execution symbols (analytics.bars layout),
    cut to [start, end] (New York dates)."""
    start, end = _bounds(spec)
    needed = list(spec.symbols)
    for symbol in spec.symbols:
        exec_symbol = config.strategy.execution_symbol(symbol)
        if exec_symbol not in needed:
            needed.append(exec_symbol)
    frames: dict[str, pd.DataFrame] = {}
    if spec.source == "db":
        for symbol in needed:
            frames[symbol] = bars_frame_from_db(symbol=symbol, start=start, end=end)
    else:
        path = Path(spec.source)
        if not path.is_file():
            raise FileNotFoundError(f"--data {spec.source}: no such file")
        if len(needed) != 1:
            raise ValueError(
                f"a CSV file holds one symbol; {spec.symbols[0]} executes in {needed[1]} "
                "(use --data db, or SYMBOL_EXECUTION_MAP without it)"
            )
        frame = bars_frame_from_file(path, tz=spec.tz)
        if start is not None:
            frame = frame[frame.index >= start]
        if end is not None:
            frame = frame[frame.index < end]
        frames[needed[0]] = frame
    empty = [s for s, f in frames.items() if f.empty]
    if empty:
        raise ValueError(f"no bars for {', '.join(empty)} in the requested range")
    return frames


def backtest_run(
    *,
    spec: DataSpec,
    config: BacktestConfig,
    mode: str = "fast",
    progress: bool = False,
    frames: dict[str, pd.DataFrame] | None = None,
    engine: str = "auto",
) -> BacktestResult:
    """Run one backtest. Session labels (trend/balance) are computed for the report."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    frames = frames if frames is not None else frames_load(spec, config)
    options = {"symbols": list(spec.symbols), "use_db_params": spec.source == "db"}
    if mode == "event":
        result = run_event(frames, config, progress=progress, **options)
    else:
        result = run_fast(frames, config, progress=progress, engine=engine, **options)
    from analytics.session_labels import label_sessions

    first = spec.symbols[0]
    result.session_labels = {d: v["label"] for d, v in label_sessions(frames[first]).items()}
    result.params = {**result.params, **spec.describe(), "mode": mode}
    return result


def backtest_persist(result: BacktestResult, *, name: str, sweep=None):
    """Store a finished backtest (statistics and trade list) as a BacktestRun."""
    from analytics.services import backtest_run_create

    return backtest_run_create(
        name=name,
        params=result.params,
        stats={
            "overall": result.stats(),
            "signals": result.as_dict()["signals"],
            "bars": result.bars,
            "sessions": len(result.sessions),
            "elapsed_sec": round(result.elapsed_sec, 4),
        },
        trades=[t.as_dict() for t in result.closed_trades()],
        sweep=sweep,
    )
