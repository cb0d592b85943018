"""The pure decision core: feature row + config + cooldown state -> one Decision per setup.

No database, no clock: the live path, the preview and the backtester all call this. The setups'
per-bar evaluators run inside the feature engine (`SetupRunner`, fed every bar so their history
state is right even for bars nobody decides on); `setups_decide` turns their verdicts into
Decisions and applies each setup's cooldown.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from strategies.config import StrategyConfig
from strategies.setups.base import NOT_FIRED, Decision

SETUPS_KEY = "setups"  # row key of the per-setup evaluations (not stored with the features)


class SetupRunner:
    """The per-bar evaluators of one symbol's enabled setups, stepped on every feature row."""

    def __init__(self, symbol: str, programs: list) -> None:
        self.programs = programs
        self.steps = [(p.name, p.version, p.bar_evaluator(symbol)) for p in programs]
        self.cooldowns = {p.name: p.cooldown_sec for p in programs}

    def __call__(self, row: dict) -> None:
        row[SETUPS_KEY] = {name: (version, step(row)) for name, version, step in self.steps}


def features_needed(programs: list) -> set[str]:
    return set().union(*(p.features for p in programs)) if programs else set()


def setups_decide(
    row: dict,
    *,
    symbol: str,
    cfg: StrategyConfig,
    last_fired: dict[str, datetime] | None = None,
) -> list[Decision]:
    """Decisions of every enabled setup on feature row `row` (of bar start row['ts']), from the
    evaluations its engine attached (`strategies.feature_store.new_engine`).

    `last_fired` maps setup -> bar start of its latest stored signal for this symbol; a setup that
    would fire within its cooldown (VWAP_COOLDOWN_SEC unless the definition says) of it is
    reported as not fired.
    """
    evaluations = row.get(SETUPS_KEY)
    if evaluations is None:
        raise ValueError("row has no setup evaluations: build the engine with new_engine()")
    decisions = []
    for name in cfg.enabled_setups:
        hit = evaluations.get(name)
        if hit is None:
            continue  # unknown or broken setup: logged when the engine was built
        version, e = hit
        decisions.append(
            Decision(
                name,
                e.status,
                e.reasons,
                e.entry,
                e.stop,
                e.target_one,
                e.target_two,
                version,
            )  # fmt: skip
        )
    if last_fired:
        decisions = cooldown_apply(decisions, bar_ts=row["ts"], last_fired=last_fired, cfg=cfg)
    return decisions


def cooldown_of(name: str, cfg: StrategyConfig) -> int:
    from strategies.setups.registry import setup_get

    entry = setup_get(name)
    if entry is None or entry.definition is None or entry.definition.cooldown_sec is None:
        if entry is not None and entry.plugin is not None and entry.plugin.cooldown_sec is not None:
            return int(entry.plugin.cooldown_sec)
        return cfg.cooldown_sec
    return entry.definition.cooldown_sec


def cooldown_window(cfg: StrategyConfig) -> int:
    """The longest cooldown of the enabled setups (how far back the journal is read)."""
    return max([cfg.cooldown_sec] + [cooldown_of(n, cfg) for n in cfg.enabled_setups])


def cooldown_apply(
    decisions: list[Decision],
    *,
    bar_ts: datetime,
    last_fired: dict[str, datetime],
    cfg: StrategyConfig,
) -> list[Decision]:
    """Turn a fire within the setup's cooldown of its previous signal into not fired."""
    out = []
    for decision in decisions:
        last = last_fired.get(decision.setup) if decision.fired else None
        cooldown = timedelta(seconds=cooldown_of(decision.setup, cfg)) if last else None
        if last is not None and bar_ts - last < cooldown:
            left = int((last + cooldown - bar_ts).total_seconds())
            decision = Decision(
                decision.setup,
                NOT_FIRED,
                [f"cooldown: fired on the bar of {last:%Y-%m-%d %H:%M}Z, {left}s left"],
                version=decision.version,
            )
        out.append(decision)
    return out
