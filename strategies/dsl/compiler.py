"""One checked expression, two evaluators: per bar (closures over a feature row, O(1) state)
and vectorised (numpy over a whole symbol's columns).

Names: lower-case names are features (see `strategies.features.library`) or the definition's own
`params`; UPPER-CASE names are strategy settings (VWAP_MIN_RVOL, ...). Anything else is an error
naming the line, column and the closest known names. Types are checked here too, so a condition
that is a number, or `and` over numbers, is rejected before it ever runs.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time

import numpy as np

from strategies.dsl import functions as F
from strategies.dsl.ast import (
    BinOp,
    Bool,
    Call,
    Compare,
    Logic,
    Name,
    Neg,
    Node,
    Not,
    Num,
    SetupError,
    Str,
    parse,
)
from strategies.dsl.functions import BOOL, NUM, SET, STR, TIME, Columns
from strategies.features.library import feature_kind, known_feature_names

_CMP = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def const_type(value) -> str:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUM
    if isinstance(value, time):
        return TIME
    if isinstance(value, frozenset | set | tuple | list):
        return SET
    if isinstance(value, str):
        return STR
    raise TypeError(f"unsupported constant {value!r}")


def _time_of(node: Node, value) -> int:
    """Minutes since midnight of a time constant or an "HH:MM" string."""
    if isinstance(value, time):
        return value.hour * 60 + value.minute
    try:
        h, m = str(value).split(":")
        t = time(int(h), int(m))
    except (ValueError, TypeError):
        raise SetupError(f"{value!r} is not a time (HH:MM)", node.line, node.column) from None
    return t.hour * 60 + t.minute


@dataclass
class Expr:
    """A checked expression; `bar()` builds a fresh per-bar evaluator, `vec()` evaluates
    columns."""

    text: str
    node: Node
    type: str
    features: frozenset[str]
    stateful: bool
    constants: dict

    def bar(self, symbol: str) -> Callable[[dict], object]:
        return _Bar(self.constants, symbol).build(self.node)

    def vec(self, cols: Columns) -> np.ndarray:
        out = _Vec(self.constants, cols).eval(self.node)
        if np.isscalar(out) or np.ndim(out) == 0:
            dtype = bool if self.type == BOOL else float
            out = np.full(len(cols), out, dtype=dtype)
        return out


class _Checker:
    def __init__(self, constants: dict):
        self.constants = constants
        self.features: set[str] = set()
        self.stateful = False

    def unknown(self, node: Node, name: str, what: str = "name"):
        pool = list(known_feature_names()) + list(self.constants) + list(F.FUNCTIONS)
        close = difflib.get_close_matches(name, pool, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise SetupError(f"unknown {what} '{name}'{hint}", node.line, node.column)

    def check(self, node: Node) -> str:
        if isinstance(node, Num):
            return NUM
        if isinstance(node, Bool):
            return BOOL
        if isinstance(node, Str):
            return STR
        if isinstance(node, Name):
            if node.id in self.constants:
                return const_type(self.constants[node.id])
            kind = feature_kind(node.id)
            if kind is None:
                self.unknown(node, node.id)
            self.features.add(node.id)
            return kind
        if isinstance(node, Neg):
            self.expect(node.operand, NUM, "'-'")
            return NUM
        if isinstance(node, BinOp):
            self.expect(node.left, NUM, f"'{node.op}'")
            self.expect(node.right, NUM, f"'{node.op}'")
            return NUM
        if isinstance(node, Compare):
            types = [self.check(o) for o in node.operands]
            for op, t, o in zip(node.ops, types, node.operands, strict=False):
                if op not in ("==", "!=") and t != NUM:
                    raise SetupError(f"'{op}' compares numbers, not {t}", o.line, o.column)
            if len(set(types)) > 1:
                raise SetupError(f"cannot compare {' with '.join(types)}", node.line, node.column)
            return BOOL
        if isinstance(node, Logic):
            self.expect(node.left, BOOL, f"'{node.op}'")
            self.expect(node.right, BOOL, f"'{node.op}'")
            return BOOL
        if isinstance(node, Not):
            self.expect(node.operand, BOOL, "'not'")
            return BOOL
        if isinstance(node, Call):
            return self.call(node)
        raise SetupError(f"unsupported syntax {type(node).__name__}", node.line, node.column)

    def expect(self, node: Node, want: str, where: str) -> None:
        got = self.check(node)
        if got != want and not (want == TIME and got == STR):
            raise SetupError(f"{where} needs a {want}, got a {got}", node.line, node.column)

    def call(self, node: Call) -> str:
        fn = F.FUNCTIONS.get(node.fn)
        if fn is None:
            self.unknown(node, node.fn, "function")
        required = [a for a in fn.args if not a.endswith("?")]
        if not len(required) <= len(node.args) <= len(fn.args):
            want = len(required) if len(required) == len(fn.args) else f"{len(required)}-"
            raise SetupError(
                f"{node.fn}() takes {want}{'' if isinstance(want, int) else len(fn.args)}"
                f" argument(s), got {len(node.args)}",
                node.line,
                node.column,
            )
        for k, (arg, want) in enumerate(zip(node.args, fn.args, strict=False)):
            want = want.rstrip("?")
            if k in fn.const_args:
                self.constant_arg(node, arg, want)
            else:
                self.expect(arg, want, f"argument {k + 1} of {node.fn}()")
        if fn.stateful:
            self.stateful = True
        return fn.returns

    def constant_arg(self, call: Call, arg: Node, want: str) -> None:
        if isinstance(arg, Name) and arg.id in self.constants:
            value = self.constants[arg.id]
        elif isinstance(arg, Num | Str):
            value = arg.value
        else:
            raise SetupError(
                f'{call.fn}() needs a constant here (a number, a "HH:MM" text or a setting)',
                arg.line,
                arg.column,
            )
        if want == NUM and (not isinstance(value, int | float) or value < 1 or value % 1):
            raise SetupError(f"{call.fn}() needs a whole number >= 1", arg.line, arg.column)
        if want == TIME:
            _time_of(arg, value)
        if want == SET and not isinstance(value, frozenset | set | tuple | list | str):
            raise SetupError(f"{call.fn}() needs symbols", arg.line, arg.column)


def _const(constants: dict, node: Node):
    return constants[node.id] if isinstance(node, Name) else node.value


def _symbols(value) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(s.strip().upper() for s in value.split(",") if s.strip())
    return frozenset(str(s).upper() for s in value)


def has_state(node: Node) -> bool:
    """True when the expression keeps history (prev, crosses_above, ...): it must see every bar."""
    if isinstance(node, Call):
        if F.FUNCTIONS[node.fn].stateful:
            return True
        return any(has_state(a) for a in node.args)
    for attr in ("left", "right", "operand"):
        child = getattr(node, attr, None)
        if child is not None and has_state(child):
            return True
    if isinstance(node, Compare):
        return any(has_state(o) for o in node.operands)
    return False


class _Bar:
    """Builds closures row -> value; a node with history state is evaluated on every bar."""

    def __init__(self, constants: dict, symbol: str):
        self.constants = constants
        self.symbol = symbol

    def build(self, node: Node) -> Callable:
        if isinstance(node, Num | Bool | Str):
            v = node.value
            return lambda row: v
        if isinstance(node, Name):
            if node.id in self.constants:
                v = self.constants[node.id]
                return lambda row: v
            key = node.id
            return lambda row: row[key]
        if isinstance(node, Neg):
            f = self.build(node.operand)
            return lambda row: -f(row)
        if isinstance(node, BinOp):
            if node.op == "/":
                a, b = self.build(node.left), self.build(node.right)
                return lambda row: F.div(a(row), b(row))
            return self.pair(_ARITH[node.op], node.left, node.right)
        if isinstance(node, Compare):
            ops = [_CMP[o] for o in node.ops]
            if len(ops) == 1:
                return self.pair(ops[0], *node.operands)
            fs = [self.build(o) for o in node.operands]
            if len(ops) == 2:
                (op1, op2), (a, b, c) = ops, fs

                def chain2(row):
                    x, y, z = a(row), b(row), c(row)  # all three: history state sees each bar
                    return op1(x, y) and op2(y, z)

                return chain2

            def chain(row):
                vals = [f(row) for f in fs]
                return all(op(vals[k], vals[k + 1]) for k, op in enumerate(ops))

            return chain
        if isinstance(node, Logic):
            a, b = self.build(node.left), self.build(node.right)
            both = has_state(node.right)
            if node.op == "and":
                if both:
                    return lambda row: bool(a(row)) & bool(b(row))
                return lambda row: bool(a(row) and b(row))
            if both:
                return lambda row: bool(a(row)) | bool(b(row))
            return lambda row: bool(a(row) or b(row))
        if isinstance(node, Not):
            f = self.build(node.operand)
            return lambda row: not f(row)
        if isinstance(node, Call):
            return self.call(node)
        raise AssertionError(node)

    def leaf(self, node: Node):
        """("row", key) for a feature, ("const", value) for a literal or constant, else None."""
        if isinstance(node, Num | Bool | Str):
            return "const", node.value
        if isinstance(node, Name):
            if node.id in self.constants:
                return "const", self.constants[node.id]
            return "row", node.id
        return None

    def pair(self, op, left: Node, right: Node) -> Callable:
        """op(left, right) with features and constants read in place (the per-bar hot path:
        most clauses compare a feature with a setting or another feature)."""
        la, lb = self.leaf(left), self.leaf(right)
        if la is not None and lb is not None:
            (ka, x), (kb, y) = la, lb
            if ka == "row" and kb == "row":
                return lambda row: op(row[x], row[y])
            if ka == "row":
                return lambda row: op(row[x], y)
            if kb == "row":
                return lambda row: op(x, row[y])
        if la is not None and la[0] == "row":
            key, b = la[1], self.build(right)
            return lambda row: op(row[key], b(row))
        if lb is not None:
            a = self.build(left)
            if lb[0] == "row":
                key = lb[1]
                return lambda row: op(a(row), row[key])
            y = lb[1]
            return lambda row: op(a(row), y)
        a, b = self.build(left), self.build(right)
        return lambda row: op(a(row), b(row))

    def call(self, node: Call) -> Callable:
        name, args = node.fn, node.args
        if name in ("time_between", "after", "before"):
            bounds = [_time_of(a, _const(self.constants, a)) for a in args]
            # bar close, minutes since midnight New York (regular session opens 09:30)
            if name == "time_between":
                lo, hi = bounds
                return lambda row: lo <= 571 + row["minute"] <= hi
            t = bounds[0]
            if name == "after":
                return lambda row: 571 + row["minute"] >= t
            return lambda row: 571 + row["minute"] < t
        if name == "symbol_in":
            hit = self.symbol.upper() in _symbols(_const(self.constants, args[0]))
            return lambda row: hit
        if name == "prev":
            n = int(_const(self.constants, args[1])) if len(args) > 1 else 1
            return F.bar_prev(self.build(args[0]), n)
        if name in ("crosses_above", "crosses_below"):
            return F.bar_cross(self.build(args[0]), self.build(args[1]), name == "crosses_above")
        if name in ("rising", "falling"):
            n = int(_const(self.constants, args[1]))
            return F.bar_rising(self.build(args[0]), n, name == "rising")
        if name == "bars_since":
            return F.bar_bars_since(self.build(args[0]))
        if name == "becomes":
            return F.bar_becomes(self.build(args[0]))
        if name == "first_since":
            return F.bar_first_since(self.build(args[0]), self.build(args[1]))
        fs = [self.build(a) for a in args]
        if name == "abs":
            return lambda row: abs(fs[0](row))
        if name in ("min", "max"):
            pick = min if name == "min" else max

            def extreme(row):
                a, b = fs[0](row), fs[1](row)
                if a != a or b != b:
                    return math.nan
                return pick(a, b)

            return extreme
        raise AssertionError(name)


class _Vec:
    def __init__(self, constants: dict, cols: Columns):
        self.constants = constants
        self.cols = cols

    def eval(self, node: Node):
        c = self.cols
        if isinstance(node, Num | Bool | Str):
            return node.value
        if isinstance(node, Name):
            if node.id in self.constants:
                return self.constants[node.id]
            return c.data[node.id]
        with np.errstate(invalid="ignore", divide="ignore"):
            if isinstance(node, Neg):
                return -np.asarray(self.eval(node.operand), dtype=float)
            if isinstance(node, BinOp):
                a = np.asarray(self.eval(node.left), dtype=float)
                b = np.asarray(self.eval(node.right), dtype=float)
                return a / b if node.op == "/" else _ARITH[node.op](a, b)
            if isinstance(node, Compare):
                vals = [self.eval(o) for o in node.operands]
                out = np.ones(len(c), dtype=bool)
                for k, op in enumerate(node.ops):
                    out &= np.asarray(_CMP[op](vals[k], vals[k + 1]), dtype=bool)
                return out
        if isinstance(node, Logic):
            a = np.asarray(self.eval(node.left), dtype=bool)
            b = np.asarray(self.eval(node.right), dtype=bool)
            return a & b if node.op == "and" else a | b
        if isinstance(node, Not):
            return ~np.asarray(self.eval(node.operand), dtype=bool)
        if isinstance(node, Call):
            return self.call(node)
        raise AssertionError(node)

    def call(self, node: Call):
        c, name, args = self.cols, node.fn, node.args
        if name in ("time_between", "after", "before"):
            bounds = [_time_of(a, _const(self.constants, a)) for a in args]
            t = c.close_minute
            if name == "time_between":
                return (t >= bounds[0]) & (t <= bounds[1])
            return t >= bounds[0] if name == "after" else t < bounds[0]
        if name == "symbol_in":
            hit = c.symbol.upper() in _symbols(_const(self.constants, args[0]))
            return np.full(len(c), hit)
        if name == "prev":
            n = int(_const(self.constants, args[1])) if len(args) > 1 else 1
            return F.vec_prev(c, self.eval(args[0]), n)
        if name in ("crosses_above", "crosses_below"):
            a = np.asarray(self.eval(args[0]), dtype=float)
            b = np.asarray(self.eval(args[1]), dtype=float)
            return F.vec_cross(c, _full(a, c), _full(b, c), name == "crosses_above")
        if name in ("rising", "falling"):
            n = int(_const(self.constants, args[1]))
            x = _full(np.asarray(self.eval(args[0]), dtype=float), c)
            return F.vec_rising(c, x, n, name == "rising")
        if name == "bars_since":
            return F.vec_bars_since(c, _full(self.eval(args[0]), c))
        if name == "becomes":
            return F.vec_becomes(c, _full(self.eval(args[0]), c))
        if name == "first_since":
            return F.vec_first_since(c, _full(self.eval(args[0]), c), _full(self.eval(args[1]), c))
        vals = [np.asarray(self.eval(a), dtype=float) for a in args]
        if name == "abs":
            return np.abs(vals[0])
        if name == "min":
            return np.minimum(vals[0], vals[1])
        if name == "max":
            return np.maximum(vals[0], vals[1])
        raise AssertionError(name)


def _full(x, cols: Columns) -> np.ndarray:
    x = np.asarray(x)
    return np.full(len(cols), x) if x.ndim == 0 else x


def bar_of(node: Node, constants: dict, symbol: str) -> Callable[[dict], object]:
    """A per-bar evaluator of one checked (sub)expression, with fresh history state."""
    return _Bar(constants, symbol).build(node)


def compile_expr(text: str, *, constants: dict, want: str) -> Expr:
    """Parse and check `text`; it must evaluate to `want` (BOOL for a condition, NUM for a
    level)."""
    node = parse(text)
    checker = _Checker(constants)
    got = checker.check(node)
    if got != want:
        raise SetupError(
            f"the expression is a {got}; a {want} is needed here", node.line, node.column
        )
    return Expr(
        text=text,
        node=node,
        type=got,
        features=frozenset(checker.features),
        stateful=checker.stateful,
        constants=constants,
    )


def top_clauses(node: Node) -> list[Node]:
    """The clauses of a top-level `a and b and c` (one clause otherwise)."""
    if isinstance(node, Logic) and node.op == "and":
        return top_clauses(node.left) + top_clauses(node.right)
    return [node]


def unparse(node: Node) -> str:
    """Readable text of a (sub)expression, for not-fired reasons."""
    if isinstance(node, Num):
        v = node.value
        return str(int(v)) if v == int(v) else repr(v)
    if isinstance(node, Str):
        return f'"{node.value}"'
    if isinstance(node, Bool):
        return "true" if node.value else "false"
    if isinstance(node, Name):
        return node.id
    if isinstance(node, Neg):
        return f"-{unparse(node.operand)}"
    if isinstance(node, BinOp):
        return f"({unparse(node.left)} {node.op} {unparse(node.right)})"
    if isinstance(node, Compare):
        parts = [unparse(node.operands[0])]
        for op, o in zip(node.ops, node.operands[1:], strict=True):
            parts += [op, unparse(o)]
        return " ".join(parts)
    if isinstance(node, Logic):
        return f"({unparse(node.left)} {node.op} {unparse(node.right)})"
    if isinstance(node, Not):
        return f"not {unparse(node.operand)}"
    if isinstance(node, Call):
        return f"{node.fn}({', '.join(unparse(a) for a in node.args)})"
    return "?"
