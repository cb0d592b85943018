"""The pure decision core: feature row + config + cooldown state -> one Decision per setup.

No database, no clock: the live path, the preview and the backtester all call this. The setups'
per-bar evaluators run inside the feature engine (`SetupRunner`, fed every bar so their history
state is right even for bars nobody decides on); `setups_decide` turns their verdicts into
Decisions and applies each setup's cooldown.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from strategies.config import StrategyConfig
from strategies.setups.base import FIRED, NOT_FIRED, Decision

SETUPS_KEY = "setups"  # row key of the per-setup evaluations (not stored with the features)


class SetupRunner:
    """The per-bar evaluators of one symbol's enabled setups, stepped on every feature row."""

    def __init__(self, symbol: str, programs: list) -> None:
        self.programs = programs
        self.steps = [
            (p.name, p.version, p.bar_evaluator(symbol), p.cooldown_sec) for p in programs
        ]
        self.cooldowns = {p.name: p.cooldown_sec for p in programs}

    def __call__(self, row: dict) -> None:
        # (version, evaluation, cooldown): the cooldown the program was built with, so the
        # per-bar decision never goes back to the registry
        row[SETUPS_KEY] = {
            name: (version, step(row), cooldown) for name, version, step, cooldown in self.steps
        }


def features_needed(programs: list) -> set[str]:
    return set().union(*(p.features for p in programs)) if programs else set()


def setups_decide(
    row: dict,
    *,
    symbol: str,
    cfg: StrategyConfig,
    last_fired: dict[str, datetime] | None = None,
    fired_only: bool = False,
) -> list[Decision]:
    """Decisions of every enabled setup on feature row `row` (of bar start row['ts']), from the
    evaluations its engine attached (`strategies.feature_store.new_engine`).

    `last_fired` maps setup -> bar start of its latest stored signal for this symbol; a setup that
    would fire within its cooldown (VWAP_COOLDOWN_SEC unless the definition says) of it is
    reported as not fired. `fired_only`: return only the setups that fire (what a backtest
    acts on; the live path journals every decision).
    """
    evaluations = row.get(SETUPS_KEY)
    if evaluations is None:
        raise ValueError("row has no setup evaluations: build the engine with new_engine()")
    decisions = []
    bar_ts = row["ts"]
    for name in cfg.enabled_setups:
        hit = evaluations.get(name)
        if hit is None:
            continue  # unknown or broken setup: logged when the engine was built
        version, e, cooldown = hit
        if fired_only and e.status != FIRED:
            continue
        last = last_fired.get(name) if last_fired and e.status == FIRED else None
        if last is not None and bar_ts - last < timedelta(seconds=cooldown):
            if fired_only:
                continue
            decisions.append(_cooled(name, version, last, cooldown, bar_ts))
            continue
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
    return decisions


def _cooled(name: str, version: str, last: datetime, cooldown: int, bar_ts: datetime) -> Decision:
    """The not-fired decision of a setup that would fire within its cooldown."""
    left = int((last + timedelta(seconds=cooldown) - bar_ts).total_seconds())
    return Decision(
        name,
        NOT_FIRED,
        [f"cooldown: fired on the bar of {last:%Y-%m-%d %H:%M}Z, {left}s left"],
        version=version,
    )


def cooldown_of(name: str, cfg: StrategyConfig) -> int:
    """The setup's cooldown as its compiled program has it (the definition's or plug-in's
    cooldown_sec, else VWAP_COOLDOWN_SEC); an unknown setup gets VWAP_COOLDOWN_SEC."""
    from strategies.dsl.ast import SetupError
    from strategies.setups.registry import setup_get

    entry = setup_get(name)
    if entry is None:
        return cfg.cooldown_sec
    try:
        return entry.program(cfg).cooldown_sec
    except SetupError:
        return cfg.cooldown_sec


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
        cooldown = cooldown_of(decision.setup, cfg) if last else None
        if last is not None and bar_ts - last < timedelta(seconds=cooldown):
            decision = _cooled(decision.setup, decision.version, last, cooldown, bar_ts)
        out.append(decision)
    return out
