"""The pure decision core: feature row + config + cooldown state -> one Decision per setup.

No database, no clock: the live path, the preview and the backtester all call this.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from strategies.config import StrategyConfig
from strategies.features.sessions import bar_close_et
from strategies.setups import SETUPS
from strategies.setups.base import NOT_FIRED, Decision, SetupContext


def setups_decide(
    row: dict,
    *,
    symbol: str,
    cfg: StrategyConfig,
    last_fired: dict[str, datetime] | None = None,
) -> list[Decision]:
    """Decisions of every enabled setup on feature row `row` (of bar start row['ts']).

    `last_fired` maps setup -> bar start of its latest stored signal for this symbol; a setup that
    would fire within VWAP_COOLDOWN_SEC of it is reported as not fired (cooldown).
    """
    bar_ts: datetime = row["ts"]
    ctx = SetupContext(symbol=symbol, close_et=bar_close_et(bar_ts))
    cooldown = timedelta(seconds=cfg.cooldown_sec)
    out = []
    for name in cfg.enabled_setups:
        decision = SETUPS[name](row, ctx, cfg)
        if decision.fired and last_fired:
            last = last_fired.get(name)
            if last is not None and bar_ts - last < cooldown:
                left = int((last + cooldown - bar_ts).total_seconds())
                decision = Decision(
                    name,
                    NOT_FIRED,
                    [f"cooldown: fired on the bar of {last:%Y-%m-%d %H:%M}Z, {left}s left"],
                )
        out.append(decision)
    return out
