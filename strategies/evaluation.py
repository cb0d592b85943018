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
    ctx = SetupContext(symbol=symbol, close_et=bar_close_et(row["ts"]))
    decisions = [SETUPS[name](row, ctx, cfg) for name in cfg.enabled_setups]
    if last_fired:
        decisions = cooldown_apply(decisions, bar_ts=row["ts"], last_fired=last_fired, cfg=cfg)
    return decisions


def cooldown_apply(
    decisions: list[Decision],
    *,
    bar_ts: datetime,
    last_fired: dict[str, datetime],
    cfg: StrategyConfig,
) -> list[Decision]:
    """Turn a fire within VWAP_COOLDOWN_SEC of the setup's previous signal into not fired."""
    cooldown = timedelta(seconds=cfg.cooldown_sec)
    out = []
    for decision in decisions:
        last = last_fired.get(decision.setup) if decision.fired else None
        if last is not None and bar_ts - last < cooldown:
            left = int((last + cooldown - bar_ts).total_seconds())
            decision = Decision(
                decision.setup,
                NOT_FIRED,
                [f"cooldown: fired on the bar of {last:%Y-%m-%d %H:%M}Z, {left}s left"],
            )
        out.append(decision)
    return out
