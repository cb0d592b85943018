"""The look-ahead check: a backtest that cannot see the future must not change its past when the
future is taken away.

The data is cut at K points (bars at or after a cut are removed) and the backtest re-run on each
truncated copy through the public entry point (`analytics.backtest.runner.backtest_run`). Before
each cut, every decision (signal, outcome, size), every fill (entry and exit legs, price and
time) and every feature value (the vectorised features the fast mode reads) must be identical
to the full run's. The cuts are chosen where a leak would show: right after bars where a setup
fired (a setup that peeks at the next bar fires there only when it can see it), inside open
trades (between an entry and its exit), and spread evenly over the data. The first difference
is reported with the bar it happened on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

BAR = timedelta(minutes=1)


@dataclass
class CutResult:
    cut: str  # ISO time: bars starting at or after it were removed
    kind: str  # after_signal / inside_trade / even
    decisions: int = 0
    fills: int = 0
    feature_rows: int = 0
    difference: dict | None = None  # the earliest of `differences`
    differences: list[dict] = field(default_factory=list)  # the first of each kind


@dataclass
class LookaheadReport:
    cuts: list[CutResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.difference is None for c in self.cuts)

    @property
    def first_difference(self) -> dict | None:
        found = [c.difference for c in self.cuts if c.difference]
        return min(found, key=lambda d: d["bar"]) if found else None

    def as_dict(self) -> dict:
        return {"passed": self.passed, "first_difference": self.first_difference,
                "cuts": [asdict(c) for c in self.cuts]}  # fmt: skip


def cut_points(result, frames: dict[str, pd.DataFrame], *, k: int) -> list[tuple[datetime, str]]:
    """Up to `k` cut times: a third right after signal bars, a third inside open trades (a bar
    or more after the entry, before the exit), the rest evenly over the regular bars."""
    first = min(f.index[0] for f in frames.values() if len(f))
    out: dict[datetime, str] = {}
    signals = sorted({s.bar_ts for s in result.signals})
    want = max(1, k // 3)
    for ts in _spread(signals, want):
        out.setdefault(ts + BAR, "after_signal")
    inside = []
    for t in result.trades:
        end = t.exit_ts or (t.entry_ts + 10 * BAR)
        bars = (end - t.entry_ts) // BAR
        if bars >= 2:
            inside.append(t.entry_ts + BAR * (bars // 2))
    for ts in _spread(sorted(inside), want):
        out.setdefault(ts, "inside_trade")
    regular = sorted(
        {ts for f in frames.values() for ts in f.index[f["regular"].to_numpy()].to_pydatetime()}
    )
    for ts in _spread(regular[1:], max(1, k - len(out))):
        out.setdefault(ts, "even")
    return sorted(((ts, kind) for ts, kind in out.items() if ts > first), key=lambda x: x[0])[:k]


def _spread(items: list, n: int) -> list:
    if not items or n <= 0:
        return []
    if len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(idx.tolist()))]


def _truncate(frames: dict[str, pd.DataFrame], cut: datetime) -> dict[str, pd.DataFrame]:
    stamp = pd.Timestamp(cut)
    return {s: f[f.index < stamp] for s, f in frames.items()}


def _decisions(result, cut: datetime) -> dict:
    return {
        (s.symbol, s.setup, s.bar_ts): (s.outcome, tuple(s.reasons), s.qty)
        for s in result.signals
        if s.bar_ts + BAR <= cut
    }


def _fills(result, cut: datetime, *, listed: set | None = None) -> dict:
    """Fills that happened on bars before the cut: (trade, leg index) -> (ts, qty, price).

    A backtest lists a trade once it has an exit, and the fast kernel only once it is closed, so
    a trade still open at the cut is compared only when the truncated run lists it (`listed`:
    its trade keys); its entry is always checked through its decision (the approved size)."""
    out = {}
    for t in result.trades:
        key = (t.symbol, t.setup, t.signal_ts)
        closed_before = t.closed and all(leg.ts < cut for leg in t.legs)
        if listed is not None and not closed_before and key not in listed:
            continue
        if t.entry_ts < cut and t.legs and t.legs[0].ts < cut:
            out[(*key, "entry")] = (t.entry_ts, t.qty, round(t.entry_price, 6), round(t.stop, 6))
        for i, leg in enumerate(t.legs):
            if leg.ts < cut:
                out[(*key, i)] = (leg.ts, leg.qty, round(leg.price, 6), leg.reason)
    return out


def _first_dict_difference(full: dict, cut_run: dict, what: str) -> dict | None:
    for key in sorted(set(full) | set(cut_run), key=lambda k: (k[2], k[0], k[1], str(k[3:]))):
        a, b = full.get(key), cut_run.get(key)
        if a != b:
            bar = key[2]
            if what == "fill":  # the bar the fill happened on
                bar = min(v[0] for v in (a, b) if v is not None)
            return {"bar": bar.isoformat(), "what": what, "symbol": key[0], "setup": key[1],
                    "detail": key[3:] or None, "with_future": a, "without_future": b}  # fmt: skip
    return None


def _features(frames, symbol: str, config) -> pd.DataFrame:
    from strategies.features import compute_features

    cfg = config.strategy
    bars = frames[symbol][["open", "high", "low", "close", "volume"]]
    return compute_features(bars, lookback_days=cfg.lookback_days, lookback_min=cfg.lookback_min,
                            rvol_profile_min_sessions=cfg.rvol_profile_min_sessions)  # fmt: skip


def _feature_difference(full: pd.DataFrame, cut_run: pd.DataFrame, symbol: str) -> dict | None:
    full = full.loc[full.index.isin(cut_run.index)]
    columns = [c for c in full.columns if c in cut_run.columns and full[c].dtype.kind == "f"]
    a = full[columns].to_numpy(dtype=float)
    b = cut_run.loc[full.index, columns].to_numpy(dtype=float)
    same = (a == b) | (np.isnan(a) & np.isnan(b)) | np.isclose(a, b, rtol=1e-12, atol=0.0)
    if same.all():
        return None
    row, col = map(int, np.argwhere(~same)[0])
    return {"bar": full.index[row].isoformat(), "what": "feature", "symbol": symbol,
            "setup": None, "detail": columns[col], "with_future": float(a[row, col]),
            "without_future": float(b[row, col])}  # fmt: skip


def lookahead_check(*, spec, config, mode: str = "fast", cuts: int = 9, frames=None,
                    engine: str = "auto") -> LookaheadReport:  # fmt: skip
    """Run the backtest of `spec` once on all the data and once per cut; see the module doc."""
    from analytics.backtest.runner import backtest_run, frames_load

    frames = frames if frames is not None else frames_load(spec, config)
    full = backtest_run(spec=spec, config=config, mode=mode, frames=frames, engine=engine)
    full_features = {s: _features(frames, s, config) for s in spec.symbols}
    report = LookaheadReport()
    for cut, kind in cut_points(full, frames, k=cuts):
        part = _truncate(frames, cut)
        if any(f.empty for f in part.values()):
            continue
        run = backtest_run(spec=spec, config=config, mode=mode, frames=part, engine=engine)
        one = CutResult(cut.isoformat(), kind)
        d_full, d_cut = _decisions(full, cut), _decisions(run, cut)
        f_cut = _fills(run, cut)
        f_full = _fills(full, cut, listed={(t.symbol, t.setup, t.signal_ts) for t in run.trades})
        one.decisions, one.fills = len(d_full), len(f_full)
        diffs = [
            _first_dict_difference(d_full, d_cut, "decision"),
            _first_dict_difference(f_full, f_cut, "fill"),
        ]
        for symbol in spec.symbols:
            feats = _features(part, symbol, config)
            one.feature_rows += len(feats)
            diffs.append(_feature_difference(full_features[symbol], feats, symbol))
        found = [d for d in diffs if d]
        one.differences = found
        one.difference = min(found, key=lambda d: d["bar"]) if found else None
        report.cuts.append(one)
    return report
