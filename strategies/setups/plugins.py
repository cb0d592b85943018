"""Python plug-ins: for a setup the definition language cannot say.

Subclass `SetupPlugin`, give it a `name`, the `features` it reads and BOTH evaluators:

    from strategies.setups.plugins import SetupPlugin

    class InsideBarBreak(SetupPlugin):
        name = "INSIDE_BAR_BREAK"
        features = ("high", "low", "close", "atr_14")

        def bar_evaluator(self, symbol, cfg):
            state = {"prev": None, "prev2": None}
            def step(row):
                ...  # O(1) work; return None (no fire) or (stop, target_one, target_two)
            return step

        def vectorised(self, cols, cfg):
            ...  # numpy over cols.data[...]; return {"fire", "stop", "target_one",
                 # "target_two"} arrays

Put the module in SETUP_PLUGINS_DIR or publish it under the entry-point group
"autotrader.setups". A plug-in missing either evaluator is refused (listed with the error).
Its version is a hash of its module's source, recorded on each signal like a definition's.
"""

from __future__ import annotations

import hashlib
import inspect

import numpy as np

from strategies.config import StrategyConfig
from strategies.dsl.functions import Columns
from strategies.setups.base import FIRED, NOT_FIRED, WARMING_UP
from strategies.setups.definition import NAME_RE, Evaluation

ENTRY_POINT_GROUP = "autotrader.setups"


class SetupPlugin:
    """Base class of a Python setup; see the module docstring."""

    name: str = ""
    description: str = ""
    features: tuple[str, ...] = ("close", "atr_14")
    cooldown_sec: int | None = None
    enabled: bool = True

    def bar_evaluator(self, symbol: str, cfg: StrategyConfig):
        """Return step(row) -> None or (stop, target_one, target_two); fresh state each call."""
        raise NotImplementedError

    def vectorised(self, cols: Columns, cfg: StrategyConfig) -> dict[str, np.ndarray]:
        """Return {"fire", "stop", "target_one", "target_two"} over the rows of `cols`."""
        raise NotImplementedError


def plugin_problem(cls: type) -> str:
    """Why a plug-in class cannot be used ('' when it can)."""
    if not isinstance(getattr(cls, "name", None), str) or not NAME_RE.fullmatch(cls.name):
        return "name must be UPPER_CASE letters, digits and _"
    for method in ("bar_evaluator", "vectorised"):
        if getattr(cls, method) is getattr(SetupPlugin, method):
            return f"{cls.__name__} does not implement {method} (both evaluators are required)"
    from strategies.features.library import feature_kind

    unknown = [f for f in cls.features if feature_kind(f) is None]
    if unknown:
        return f"unknown feature(s) {', '.join(unknown)}"
    return ""


def plugin_version(cls: type) -> str:
    try:
        source = inspect.getsource(inspect.getmodule(cls))
    except (OSError, TypeError):
        source = f"{cls.__module__}.{cls.__qualname__}"
    return hashlib.sha256(source.encode()).hexdigest()[:12]


class PluginProgram:
    """A plug-in behind the same interface as a compiled definition (`SetupProgram`)."""

    def __init__(self, plugin: SetupPlugin, cfg: StrategyConfig, version: str):
        self.plugin = plugin
        self.cfg = cfg
        self.name = plugin.name
        self.version = version
        self.features = frozenset(plugin.features)
        self.cooldown_sec = cfg.cooldown_sec if plugin.cooldown_sec is None else plugin.cooldown_sec
        self.reason = plugin.description or f"plug-in {plugin.name} fired"

    def bar_evaluator(self, symbol: str):
        inner = self.plugin.bar_evaluator(symbol, self.cfg)
        names = sorted(self.features)
        reason = self.reason

        def step(row: dict) -> Evaluation:
            out = inner(row)
            missing = [n for n in names if row[n] != row[n]]
            if missing:
                return Evaluation(WARMING_UP, [f"warming up: {', '.join(missing)}"])
            if out is None:
                return Evaluation(NOT_FIRED, [f"{self.name}: no signal"])
            stop, t1, t2 = out
            return Evaluation(FIRED, [reason], row["close"], stop, t1, t2)

        return step

    def vector(self, cols: Columns) -> dict[str, np.ndarray]:
        out = self.plugin.vectorised(cols, self.cfg)
        ready = np.ones(len(cols), dtype=bool)
        for n in self.features:
            x = cols.data[n]
            if x.dtype != bool:
                ready &= ~np.isnan(x)
        return {**out, "fire": ready & np.asarray(out["fire"], dtype=bool)}
