"""A setup written once as a definition (YAML), compiled to its per-bar and vectorised forms.

A definition file:

    name: MY_SETUP                 # UPPER_CASE letters, digits, _
    description: why it trades     # optional
    condition: rvol >= 1.2 and crosses_above(close, vwap)
    stop: close - 1.2 * atr_14     # optional (default: close - RISK_STOP_ATR_MULTIPLIER * atr_14)
    target_one: vwap + atr_14      # optional (default: close + TARGET_ONE_ATR_MULTIPLIER * atr_14)
    target_two: vwap + 2 * atr_14  # optional (default: close + TARGET_TWO_ATR_MULTIPLIER * atr_14)
    cooldown_sec: 900              # optional (default: VWAP_COOLDOWN_SEC)
    params: {min_rvol: 1.2}        # optional named numbers the expressions may use
    enabled: true                  # optional (default true)

Entry is the bar's close. The version is a content hash of the text, recorded on every signal.
Errors name the line and column in the file (`SetupError`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import partial

import numpy as np
import yaml

from strategies.config import StrategyConfig
from strategies.dsl.ast import SetupError
from strategies.dsl.compiler import (
    Expr,
    bar_of,
    compile_expr,
    has_state,
    top_clauses,
    unparse,
)
from strategies.dsl.functions import BOOL, NUM, Columns
from strategies.setups.base import FIRED, NOT_FIRED, WARMING_UP

NAME_RE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
KEYS = {
    "name",
    "description",
    "condition",
    "stop",
    "target_one",
    "target_two",
    "cooldown_sec",
    "params",
    "enabled",
}
DEFAULT_LEVELS = {
    "stop": "close - RISK_STOP_ATR_MULTIPLIER * atr_14",
    "target_one": "close + TARGET_ONE_ATR_MULTIPLIER * atr_14",
    "target_two": "close + TARGET_TWO_ATR_MULTIPLIER * atr_14",
}
# setting name -> StrategyConfig field: the thresholds a definition may name in UPPER_CASE
SETTING_FIELDS = {
    "VWAP_COOLDOWN_SEC": "cooldown_sec",
    "RISK_STOP_ATR_MULTIPLIER": "stop_atr",
    "TARGET_ONE_ATR_MULTIPLIER": "target_one_atr",
    "TARGET_TWO_ATR_MULTIPLIER": "target_two_atr",
    "VWAP_MIN_RVOL": "vwap_min_rvol",
    "POWER_HOUR_SYMBOLS": "power_hour_symbols",
    "POWER_HOUR_START": "power_hour_start",
    "SIGMA_FADE_BAND_K": "sigma_fade_band_k",
    "SIGMA_FADE_MIN_RVOL": "sigma_fade_min_rvol",
    "HOD_FAIL_MIN_ATR": "hod_fail_min_atr",
    "ORB_START": "orb_start",
    "ORB_END": "orb_end",
    "ORB_BREAKOUT_ATR": "orb_breakout_atr",
    "ORB_MIN_RVOL": "orb_min_rvol",
    "ORB_STOP_ATR": "orb_stop_atr",
    "ORB_MIN_REGIME": "orb_min_regime",
    "TREND_PULLBACK_MAX_ATR": "trend_pullback_max_atr",
    "TREND_PULLBACK_MIN_RVOL": "trend_pullback_min_rvol",
    "TREND_PULLBACK_MIN_REGIME": "trend_pullback_min_regime",
    "VWAP_MEAN_MIN_ATR": "vwap_mean_min_atr",
    "VWAP_MEAN_MIN_RVOL": "vwap_mean_min_rvol",
    "VWAP_MEAN_MIN_REGIME": "vwap_mean_min_regime",
    "VWAP_MEAN_T2_ATR": "vwap_mean_t2_atr",
}
assert set(SETTING_FIELDS.values()) <= {f.name for f in fields(StrategyConfig)}


def setting_constants(cfg: StrategyConfig) -> dict:
    return {name: getattr(cfg, attr) for name, attr in SETTING_FIELDS.items()}


def version_of(text: str) -> str:
    """Content hash of a definition (whitespace at line ends ignored)."""
    norm = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return hashlib.sha256(norm.encode()).hexdigest()[:12]


@dataclass
class Definition:
    """A parsed, checked definition (expressions compiled lazily per StrategyConfig)."""

    name: str
    text: str
    version: str
    condition: str
    levels: dict[str, str]
    cooldown_sec: int | None
    params: dict[str, float]
    enabled: bool
    description: str = ""
    positions: dict[str, tuple[int, int, str]] = field(default_factory=dict)

    def program(self, cfg: StrategyConfig) -> SetupProgram:
        return SetupProgram.build(self, cfg)


def _scalar_position(node, text: str) -> tuple[int, int, str]:
    """(line, column, style) of a YAML scalar's first character of content (1-based)."""
    mark = node.start_mark
    style = getattr(node, "style", None) or ""
    if style in ("|", ">"):
        # content starts on the next line, at the block's indentation
        lines = text.splitlines()
        for k in range(mark.line + 1, len(lines)):
            if lines[k].strip():
                indent = len(lines[k]) - len(lines[k].lstrip())
                return k + 1, indent + 1, style
        return mark.line + 2, 1, style
    offset = 1 if style in ("'", '"') else 0
    return mark.line + 1, mark.column + 1 + offset, style


def parse_definition(text: str, *, source: str = "", cfg: StrategyConfig | None = None):
    """Parse and check a definition; raises SetupError (line, column in `text`)."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except RecursionError:
        raise SetupError("YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is not None:
            raise SetupError(f"YAML: {problem}", mark.line + 1, mark.column + 1) from None
        raise SetupError(f"YAML: {problem}") from None
    if not isinstance(data, dict) or node is None:
        raise SetupError("a setup definition is a mapping (name:, condition:, ...)", 1, 1)
    positions: dict[str, tuple[int, int, str]] = {}
    key_marks: dict[str, tuple[int, int]] = {}
    for key_node, value_node in node.value:
        key_marks[str(key_node.value)] = (
            key_node.start_mark.line + 1,
            key_node.start_mark.column + 1,
        )
        positions[str(key_node.value)] = _scalar_position(value_node, text)
    unknown = sorted(set(map(str, data)) - KEYS)
    if unknown:
        line, col = key_marks[unknown[0]]
        raise SetupError(
            f"unknown key '{unknown[0]}' (known: {', '.join(sorted(KEYS))})", line, col
        )
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        line, col, _ = positions.get("name", (1, 1, ""))
        raise SetupError("name must be UPPER_CASE letters, digits and _ (at most 32)", line, col)
    condition = data.get("condition")
    if not isinstance(condition, str) or not condition.strip():
        line, col, _ = positions.get("condition", (1, 1, ""))
        raise SetupError("condition is required (an expression that is true or false)", line, col)
    levels = {}
    for key, default in DEFAULT_LEVELS.items():
        value = data.get(key, default)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = repr(value)
        if not isinstance(value, str):
            line, col, _ = positions.get(key, (1, 1, ""))
            raise SetupError(f"{key} must be an expression", line, col)
        levels[key] = value
    cooldown = data.get("cooldown_sec")
    if cooldown is not None and (not isinstance(cooldown, int) or cooldown < 0):
        line, col, _ = positions["cooldown_sec"]
        raise SetupError("cooldown_sec must be a whole number of seconds >= 0", line, col)
    params = data.get("params") or {}
    if not isinstance(params, dict):
        line, col, _ = positions["params"]
        raise SetupError("params must be a mapping of name: number", line, col)
    for pname, value in params.items():
        if (
            not re.fullmatch(r"[a-z][a-z0-9_]*", str(pname))
            or isinstance(value, bool)
            or not (isinstance(value, int | float))
        ):
            line, col, _ = positions["params"]
            raise SetupError(f"param '{pname}': lower_case name with a number value", line, col)
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        line, col, _ = positions["enabled"]
        raise SetupError("enabled must be true or false", line, col)
    definition = Definition(
        name=name,
        text=text,
        version=version_of(text),
        condition=condition,
        levels=levels,
        cooldown_sec=cooldown,
        params={str(k): float(v) for k, v in params.items()},
        enabled=enabled,
        description=str(data.get("description") or ""),
        positions=positions,
    )
    SetupProgram.build(definition, cfg or StrategyConfig())  # check every expression now
    return definition


@dataclass(slots=True)
class Evaluation:
    """One setup on one bar, before cooldown. `reasons` is a list or a zero-argument callable
    producing it (formatted only when someone reads it: see `Decision`)."""

    status: str
    reasons: object
    entry: float | None = None
    stop: float | None = None
    target_one: float | None = None
    target_two: float | None = None


class SetupProgram:
    """A definition compiled against one StrategyConfig (settings resolved to values)."""

    def __init__(self, definition, condition: Expr, levels: dict[str, Expr], cooldown_sec: int):
        self.definition = definition
        self.name = definition.name
        self.version = definition.version
        self.condition = condition
        self.levels = levels
        self.cooldown_sec = cooldown_sec
        self.features = condition.features.union(*(e.features for e in levels.values()))
        self.clauses = top_clauses(condition.node)
        self.reason = definition.description or f"condition held: {unparse(condition.node)}"

    @classmethod
    def build(cls, definition: Definition, cfg: StrategyConfig) -> SetupProgram:
        clash = sorted(set(definition.params) & set(SETTING_FIELDS))
        constants = {**setting_constants(cfg), **definition.params}
        if clash:
            raise SetupError(f"param '{clash[0]}' hides a setting of the same name")

        def compiled(key: str, text: str, want: str) -> Expr:
            try:
                return compile_expr(text, constants=constants, want=want)
            except SetupError as exc:
                line, col, style = definition.positions.get(key, (None, None, ""))
                if line is None:
                    raise SetupError(f"{key}: {exc.message}", exc.line, exc.column) from None
                raise _at(exc, key, line, col, style) from None

        condition = compiled("condition", definition.condition, BOOL)
        levels = {}
        for key, text in definition.levels.items():
            expr = compiled(key, text, NUM)
            if expr.stateful:
                line, col, _ = definition.positions.get(key, (1, 1, ""))
                raise SetupError(
                    f"{key}: history functions (prev, crosses_above, ...) are for conditions;"
                    " use a feature such as lowest_5 in a level",
                    line,
                    col,
                )
            levels[key] = expr
        cooldown = definition.cooldown_sec
        return cls(
            definition, condition, levels, cfg.cooldown_sec if cooldown is None else cooldown
        )

    # --- per bar -------------------------------------------------------------------------
    def bar_evaluator(self, symbol: str) -> Callable[[dict], Evaluation]:
        """A fresh per-bar evaluator (its own history state) for one symbol; call it with every
        regular-session feature row in time order. Clauses with history (prev, crosses_above,
        ...) run on every bar, so their state sees each bar; the pure ones stop at the first
        that fails (most bars fail early), and the not-fired reasons re-evaluate them only
        when someone reads the reasons (pure clauses of the same row give the same values)."""
        consts = self.condition.constants
        clauses = [(bar_of(c, consts, symbol), unparse(c), _names_in(c)) for c in self.clauses]
        kept = [has_state(c) for c in self.clauses]
        history = [fn for (fn, _, _), k in zip(clauses, kept, strict=True) if k]
        pure = [fn for (fn, _, _), k in zip(clauses, kept, strict=True) if not k]
        levels = [self.levels[k].bar(symbol) for k in ("stop", "target_one", "target_two")]
        names = sorted(self.features)
        reason = self.reason

        def not_fired(seen: list, row: dict) -> Evaluation:
            return Evaluation(NOT_FIRED, partial(_failed_reasons, seen, kept, clauses, row, consts))

        def step(row: dict) -> Evaluation:
            seen = [fn(row) for fn in history]  # every bar: history state
            for n in names:
                v = row[n]
                if v != v:  # NaN: not available yet (the list is built only then)
                    missing = [n for n in names if row[n] != row[n]]
                    return Evaluation(
                        WARMING_UP, [f"warming up: {', '.join(missing)} not available yet"]
                    )
            for held in seen:
                if not held:
                    return not_fired(seen, row)
            for fn in pure:
                if not fn(row):
                    return not_fired(seen, row)
            return Evaluation(
                FIRED,
                [reason],
                entry=row["close"],
                stop=levels[0](row),
                target_one=levels[1](row),
                target_two=levels[2](row),
            )

        return step

    # --- vectorised ------------------------------------------------------------------------
    def vector(self, cols: Columns) -> dict[str, np.ndarray]:
        """fire (bool, warm-up applied, before cooldown), stop, target_one, target_two."""
        ready = np.ones(len(cols), dtype=bool)
        for n in self.features:
            x = cols.data[n]
            if x.dtype != bool:
                ready &= ~np.isnan(x)
        fire = ready & np.asarray(self.condition.vec(cols), dtype=bool)
        out = {"fire": fire}
        for key, expr in self.levels.items():
            out[key] = np.asarray(expr.vec(cols), dtype=float)
        return out


def _failed_reasons(seen: list, kept: list, clauses: list, row: dict, consts: dict) -> list[str]:
    """The clauses that failed on `row`: history clauses as they were seen on the bar, pure
    ones evaluated again on the same row."""
    values = iter(seen)
    held = [next(values) if k else fn(row) for (fn, _, _), k in zip(clauses, kept, strict=True)]
    return [
        f"not met: {text}{_values(names, row, consts)}"
        for ok, (_, text, names) in zip(held, clauses, strict=True)
        if not ok
    ]


def _names_in(node) -> tuple[str, ...]:
    """Feature and setting names a clause reads, in order of appearance (no repeats)."""
    from strategies.dsl.ast import Name

    seen: dict[str, None] = {}

    def walk(n):
        if isinstance(n, Name):
            seen[n.id] = None
        for child in getattr(n, "args", ()) or getattr(n, "operands", ()):
            walk(child)
        for attr in ("left", "right", "operand"):
            if getattr(n, attr, None) is not None:
                walk(getattr(n, attr))

    walk(node)
    return tuple(seen)


def _values(names: tuple[str, ...], row: dict, consts: dict) -> str:
    parts = []
    for n in names:
        v = consts[n] if n in consts else row.get(n)
        if isinstance(v, float):
            parts.append(f"{n}={v:.6g}")
        elif isinstance(v, frozenset | set):
            parts.append(f"{n}={','.join(sorted(v))}")
        elif hasattr(v, "strftime"):
            parts.append(f"{n}={v:%H:%M}")
        elif v is not None:
            parts.append(f"{n}={v}")
    return f" ({', '.join(parts)})" if parts else ""


def _at(exc: SetupError, key: str, line: int, col: int, style: str) -> SetupError:
    """Move an expression error (line/column in the expression) to its place in the file: a
    block scalar (| or >) is indented by col - 1 on every line, a flow scalar only starts there."""
    if exc.line is None:
        return SetupError(f"{key}: {exc.message}", line, col)
    block = style in ("|", ">")
    column = col + exc.column - 1 if (block or exc.line == 1) else exc.column
    return SetupError(f"{key}: {exc.message}", line + exc.line - 1, column)
