"""Replay expectancy: what happened after each journaled signal, from the stored bars.

Convention (the backtester's): a signal is decided at its bar's close and entered at the next
bar's open. The forward window is the next `horizon` regular-session bars of the same session
(intraday trades are flat by the close), so a late signal has a shorter window.
- forward return: last close of the window / entry − 1 (sign-flipped for sells);
- MFE / MAE: best high / worst low of the window against the entry (favourable ≥ 0, adverse ≤ 0);
- `r_multiple`: the forward move in units of the signal's stop distance, when it has a stop.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analytics.statistics import bootstrap_confidence_interval, mean_confidence_interval


@dataclass(frozen=True)
class SignalProbe:
    """What the replay needs from a journaled signal."""

    signal_id: int | None
    setup: str
    symbol: str
    bar_ts: pd.Timestamp
    side: str = "buy"
    stop_price: float | None = None


@dataclass(frozen=True)
class ForwardOutcome:
    signal_id: int | None
    setup: str
    symbol: str
    bar_ts: str
    entry_ts: str | None
    entry_price: float | None
    bars: int
    forward_return: float | None
    mfe: float | None
    mae: float | None
    r_multiple: float | None
    skipped: str = ""


def forward_outcome(frame: pd.DataFrame, probe: SignalProbe, horizon: int) -> ForwardOutcome:
    """Outcome of one signal against a bars frame (analytics.bars layout)."""
    index = frame.index
    start = int(index.searchsorted(probe.bar_ts, side="right"))
    base = {
        "signal_id": probe.signal_id,
        "setup": probe.setup,
        "symbol": probe.symbol,
        "bar_ts": probe.bar_ts.isoformat(),
    }
    if start >= len(frame):
        return ForwardOutcome(**base, entry_ts=None, entry_price=None, bars=0,
                              forward_return=None, mfe=None, mae=None, r_multiple=None,
                              skipped="no bar after the signal")  # fmt: skip
    window = frame.iloc[start : start + horizon]
    regular = window["regular"].to_numpy()
    same_day = window["session"].to_numpy() == window["session"].iloc[0]
    keep = np.logical_and.accumulate(regular & same_day)
    window = window[keep]
    if window.empty:
        return ForwardOutcome(**base, entry_ts=None, entry_price=None, bars=0,
                              forward_return=None, mfe=None, mae=None, r_multiple=None,
                              skipped="signal at or after the session close")  # fmt: skip
    entry = float(window["open"].iloc[0])
    sign = -1.0 if probe.side == "sell" else 1.0
    last = float(window["close"].iloc[-1])
    highs = window["high"].to_numpy()
    lows = window["low"].to_numpy()
    if sign > 0:
        mfe = float(highs.max()) / entry - 1
        mae = float(lows.min()) / entry - 1
    else:
        mfe = 1 - float(lows.min()) / entry
        mae = 1 - float(highs.max()) / entry
    fwd = sign * (last / entry - 1)
    r_multiple = None
    if probe.stop_price is not None and math.isfinite(probe.stop_price):
        risk = abs(entry - probe.stop_price)
        if risk > 0:
            r_multiple = sign * (last - entry) / risk
    return ForwardOutcome(
        **base,
        entry_ts=window.index[0].isoformat(),
        entry_price=entry,
        bars=len(window),
        forward_return=fwd,
        mfe=mfe,
        mae=mae,
        r_multiple=r_multiple,
    )


def expectancy_by_setup(outcomes: list[ForwardOutcome]) -> dict[str, dict]:
    """Per setup (and ALL): signals, win rate, expectancy of forward returns with a 95% t and
    bootstrap interval, mean MFE/MAE and mean R multiple."""
    groups: dict[str, list[ForwardOutcome]] = defaultdict(list)
    for item in outcomes:
        if item.forward_return is None:
            continue
        groups[item.setup].append(item)
        groups["ALL"].append(item)
    table: dict[str, dict] = {}
    for setup, items in sorted(groups.items()):
        returns = [o.forward_return for o in items]
        rs = [o.r_multiple for o in items if o.r_multiple is not None]
        table[setup] = {
            "signals": len(items),
            "win_rate": sum(r > 0 for r in returns) / len(returns),
            "expectancy": float(np.mean(returns)),
            "ci_t": mean_confidence_interval(returns).as_dict(),
            "ci_bootstrap": bootstrap_confidence_interval(returns).as_dict(),
            "mean_mfe": float(np.mean([o.mfe for o in items])),
            "mean_mae": float(np.mean([o.mae for o in items])),
            "expectancy_r": float(np.mean(rs)) if rs else None,
        }
    return table


def outcome_rows(outcomes: list[ForwardOutcome]) -> list[dict]:
    return [asdict(o) for o in outcomes]


def signals_replay(*, limit: int = 200, horizon: int = 30, setups: list[str] | None = None) -> dict:
    """Forward outcomes of the last `limit` journaled signals from the stored bars, and the
    per-setup expectancy table. Bars are read from the execution symbol (the prices the trade
    would have had) and fall back to the signal's own symbol."""
    from datetime import timedelta

    from analytics.bars import bars_frame_from_db
    from analytics.selectors import signals_for_replay

    signals = signals_for_replay(limit=limit, setups=setups)
    by_symbol: dict[str, list] = defaultdict(list)
    for signal in signals:
        by_symbol[signal.execution_symbol or signal.symbol].append(signal)
    outcomes: list[ForwardOutcome] = []
    for symbol, group in by_symbol.items():
        start = min(s.bar_ts for s in group)
        end = max(s.bar_ts for s in group) + timedelta(minutes=horizon + 2)
        frame = bars_frame_from_db(symbol=symbol, start=start, end=end)
        if frame.empty and group[0].symbol != symbol:
            frame = bars_frame_from_db(symbol=group[0].symbol, start=start, end=end)
        for signal in group:
            stop = float(signal.stop_price) if signal.stop_price is not None else None
            probe = SignalProbe(
                signal_id=signal.pk,
                setup=signal.setup,
                symbol=symbol,
                bar_ts=pd.Timestamp(signal.bar_ts),
                side=signal.side,
                stop_price=stop,
            )
            outcomes.append(forward_outcome(frame, probe, horizon))
    outcomes.sort(key=lambda o: (o.bar_ts, o.setup))
    return {
        "limit": limit,
        "horizon": horizon,
        "signals": len(signals),
        "evaluated": sum(o.forward_return is not None for o in outcomes),
        "by_setup": expectancy_by_setup(outcomes),
        "outcomes": outcome_rows(outcomes),
    }
