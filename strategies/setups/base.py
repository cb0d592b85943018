"""What every setup returns: a decision with reasons, never a bare boolean."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from strategies.config import StrategyConfig

FIRED = "fired"
NOT_FIRED = "not_fired"
WARMING_UP = "warming_up"


@dataclass(frozen=True, slots=True)
class SetupContext:
    """Facts a setup needs beyond the feature row."""

    symbol: str
    close_et: datetime  # the bar's close in America/New_York: the decision time


@dataclass(slots=True)
class Decision:
    setup: str
    status: str
    reasons: list[str] = field(default_factory=list)
    entry: float | None = None
    stop: float | None = None
    target_one: float | None = None
    target_two: float | None = None

    @property
    def fired(self) -> bool:
        return self.status == FIRED

    def as_dict(self) -> dict:
        return {
            "setup": self.setup,
            "status": self.status,
            "reasons": list(self.reasons),
            "entry": self.entry,
            "stop": self.stop,
            "target_one": self.target_one,
            "target_two": self.target_two,
        }


def missing(f: dict, *names: str) -> list[str]:
    """Names of features that are not available yet (NaN) in row `f`."""
    return [n for n in names if f[n] != f[n]]


def warming_up(setup: str, names: list[str]) -> Decision:
    return Decision(setup, WARMING_UP, [f"warming up: {', '.join(names)} not available yet"])


def not_fired(setup: str, reasons: list[str]) -> Decision:
    return Decision(setup, NOT_FIRED, reasons)


def fired(
    setup: str,
    f: dict,
    cfg: StrategyConfig,
    reason: str,
    *,
    stop: float | None = None,
    target_one: float | None = None,
    target_two: float | None = None,
) -> Decision:
    """A long entry at the bar's close with ATR-based stop and targets unless given."""
    entry = f["close"]
    atr = f["atr_14"]
    return Decision(
        setup,
        FIRED,
        [reason],
        entry=entry,
        stop=entry - cfg.stop_atr * atr if stop is None else stop,
        target_one=entry + cfg.target_one_atr * atr if target_one is None else target_one,
        target_two=entry + cfg.target_two_atr * atr if target_two is None else target_two,
    )


def fmt(x: float) -> str:
    return f"{x:.4g}"
