"""What every setup returns: a decision with reasons, never a bare boolean."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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
    """`reasons` may be given as a zero-argument callable: it is called (once) when the reasons
    are first read, so a bar nobody looks at never pays for formatting them."""

    setup: str
    status: str
    reasons_of: object = field(default_factory=list)  # list[str] or () -> list[str]
    entry: float | None = None
    stop: float | None = None
    target_one: float | None = None
    target_two: float | None = None
    version: str = ""  # content hash of the setup definition that decided

    @property
    def reasons(self) -> list[str]:
        if callable(self.reasons_of):
            self.reasons_of = self.reasons_of()
        return self.reasons_of

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
            "version": self.version,
        }
