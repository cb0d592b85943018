"""The strategy stage of the live path, without the database: the same incremental feature
engine, the same pure `setups_decide` (cooldown included) and the same execution-map
translation of levels, fed bar by bar by the backtester.

What the live `evaluate_bar` adds and a backtest leaves out: the FeatureSnapshot/Signal rows,
the options gate (no historical options snapshots; with no POLYGON_API_KEY it passes live too)
and session policies (the policy book reads the journal for `max_trades`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

from strategies.config import StrategyConfig
from strategies.evaluation import cooldown_window, setups_decide
from strategies.execution_map import MAX_STALENESS, levels_translate
from strategies.feature_store import new_engine
from strategies.setups.base import Decision


@dataclass(frozen=True)
class FiredSignal:
    """A setup that fired on (symbol, bar_ts), with levels on the execution symbol."""

    symbol: str
    execution_symbol: str
    setup: str
    bar_ts: datetime
    entry: Decimal | None  # None: the execution price was unknown (live: outcome failed)
    stop: Decimal | None
    target_one: Decimal | None
    target_two: Decimal | None
    exec_atr: float | None
    row: dict


class PriceLookup:
    """Closes and volumes of one symbol by bar start, for the execution map and index volume."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.ts = frame.index.as_unit("ns").asi8
        self.close = frame["close"].to_numpy(dtype=float)
        self.volume = frame["volume"].to_numpy(dtype=float)
        self._by_ts = dict(zip(self.ts.tolist(), range(len(self.ts)), strict=True))

    def volume_at(self, ts: pd.Timestamp) -> float:
        i = self._by_ts.get(ts.value)
        return 0.0 if i is None else float(self.volume[i])

    def close_at_or_before(self, ts: datetime, staleness: timedelta) -> float | None:
        stamp = pd.Timestamp(ts).value
        i = int(np.searchsorted(self.ts, stamp, side="right")) - 1
        if i < 0 or self.ts[i] < stamp - int(staleness.total_seconds() * 1e9):
            return None
        return float(self.close[i])


def fired_levels(
    decision: Decision,
    *,
    row: dict,
    symbol: str,
    cfg: StrategyConfig,
    exec_prices: PriceLookup | None,
) -> FiredSignal:
    """Translate a fired decision to the execution symbol like `strategies.services` does;
    levels are None when the execution price at that minute is unknown (live: failed)."""
    exec_symbol = cfg.execution_symbol(symbol)
    bar_ts = row["ts"]
    if exec_symbol == symbol:
        ratio = 1.0
    else:
        exec_close = exec_prices.close_at_or_before(bar_ts, MAX_STALENESS) if exec_prices else None
        if exec_close is None or not row["close"] > 0:
            return FiredSignal(
                symbol, exec_symbol, decision.setup, bar_ts, None, None, None, None, None, row
            )
        ratio = exec_close / row["close"]
    entry, stop, t1, t2, exec_atr = levels_translate(
        ratio=ratio,
        entry=decision.entry,
        stop=decision.stop,
        target_one=decision.target_one,
        target_two=decision.target_two,
        atr=row["atr_14"],
    )
    return FiredSignal(
        symbol, exec_symbol, decision.setup, bar_ts, entry, stop, t1, t2, exec_atr, row
    )


class StrategyDriver:
    """One symbol's engine plus its cooldown memory."""

    def __init__(
        self,
        symbol: str,
        cfg: StrategyConfig,
        *,
        exec_prices: PriceLookup | None = None,
        volume_proxy: PriceLookup | None = None,
    ) -> None:
        self.symbol = symbol
        self.cfg = cfg
        self.engine = new_engine(symbol, cfg)
        self.exec_prices = exec_prices
        self.volume_proxy = volume_proxy
        self.last_fired: dict[str, datetime] = {}
        self.row: dict | None = None
        # how far back a previous signal can matter: the longest cooldown of any setup
        self.window = timedelta(seconds=cooldown_window(cfg))

    def on_bar(self, ts: pd.Timestamp, o: float, h: float, lo: float, c: float, v: float):
        """Advance the engine; returns the fired signals of this bar (possibly none)."""
        if self.volume_proxy is not None:
            v = self.volume_proxy.volume_at(ts)
        row = self.engine.update(ts.to_pydatetime(), o, h, lo, c, v)
        self.row = row
        if row is None:
            return []
        ts_now, window = row["ts"], self.window
        recent = {k: t for k, t in self.last_fired.items() if t < ts_now and ts_now - t <= window}
        fired = []
        decided = setups_decide(
            row, symbol=self.symbol, cfg=self.cfg, last_fired=recent, fired_only=True
        )
        for decision in decided:
            # live: every stored signal (any outcome) starts the cooldown
            self.last_fired[decision.setup] = row["ts"]
            fired.append(
                fired_levels(
                    decision,
                    row=row,
                    symbol=self.symbol,
                    cfg=self.cfg,
                    exec_prices=self.exec_prices,
                )
            )
        return fired
