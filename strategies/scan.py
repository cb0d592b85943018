"""Replay bars through the engine and the setups in memory (no database): the same decisions the
live path makes, for backtests, benchmarks and pinned tests. Cooldowns are tracked here the way
the live path reads them from stored signals."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from marketdata.types import BarData
from strategies.config import StrategyConfig
from strategies.evaluation import setups_decide
from strategies.feature_store import new_engine
from strategies.setups.base import Decision


def decisions_scan(
    *, symbol: str, bars: Iterable[BarData], cfg: StrategyConfig
) -> Iterator[tuple[dict, list[Decision]]]:
    """Yield (feature row, decisions) for every regular-session bar of `bars` (time order)."""
    engine = new_engine(symbol, cfg)
    last_fired: dict = {}
    for b in bars:
        row = engine.update(b.ts, b.open, b.high, b.low, b.close, b.volume)
        if row is None:
            continue
        decisions = setups_decide(row, symbol=symbol, cfg=cfg, last_fired=last_fired)
        for d in decisions:
            if d.fired:
                last_fired[d.setup] = b.ts
        yield row, decisions
