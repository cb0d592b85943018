"""The syntax tree of a setup expression, built from lark's parse tree.

Every node keeps the line and column where it starts (1-based, within the expression text), so
errors found after parsing (unknown name, wrong type) point at the right place.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lark import Lark, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken


class SetupError(ValueError):
    """A setup definition that cannot be used; says where (line, column) and what is wrong."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.message = message
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(f"{where}{message}")


@dataclass(frozen=True, slots=True)
class Node:
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Num(Node):
    value: float


@dataclass(frozen=True, slots=True)
class Str(Node):
    value: str


@dataclass(frozen=True, slots=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class Name(Node):
    id: str


@dataclass(frozen=True, slots=True)
class Call(Node):
    fn: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class BinOp(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """a < b <= c: every adjacent pair must hold (like Python's chained comparison)."""

    ops: tuple[str, ...]
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Logic(Node):
    op: str  # "and" | "or"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node


@v_args(inline=True)
class _ToAst(Transformer):
    def number(self, tok):
        return Num(tok.line, tok.column, float(tok))

    def string(self, tok):
        return Str(tok.line, tok.column, tok[1:-1])

    @v_args(meta=True)
    def true(self, meta, _children):
        return Bool(meta.line, meta.column, True)

    @v_args(meta=True)
    def false(self, meta, _children):
        return Bool(meta.line, meta.column, False)

    def name(self, tok):
        return Name(tok.line, tok.column, str(tok))

    def call(self, fn, *args):
        return Call(fn.line, fn.column, str(fn), tuple(a for a in args if a is not None))

    def binop(self, left, op, right):
        return BinOp(left.line, left.column, str(op), left, right)

    @v_args(meta=True)
    def neg(self, meta, children):
        return Neg(meta.line, meta.column, children[0])

    def compare(self, first, *rest):
        ops = tuple(str(t) for t in rest[0::2])
        operands = (first, *rest[1::2])
        return Compare(first.line, first.column, ops, operands)

    def and_op(self, left, right):
        return Logic(left.line, left.column, "and", left, right)

    def or_op(self, left, right):
        return Logic(left.line, left.column, "or", left, right)

    @v_args(meta=True)
    def not_op(self, meta, children):
        return Not(meta.line, meta.column, children[0])


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _describe(exc: UnexpectedInput, text: str) -> str:
    if isinstance(exc, UnexpectedEOF):
        return "the expression ends too early (an operand or ')' is missing)"
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        return f"unexpected character {ch!r}"
    if isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            return "the expression ends too early (an operand or ')' is missing)"
        return f"unexpected {exc.token.value!r}"
    return str(exc)


@lru_cache(maxsize=1024)
def parse(text: str) -> Node:
    """The syntax tree of `text`; a SetupError naming line and column when it is malformed."""
    if not text or not text.strip():
        raise SetupError("empty expression", 1, 1)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        line = exc.line if exc.line and exc.line > 0 else text.count("\n") + 1
        column = exc.column if exc.column and exc.column > 0 else len(text.splitlines()[-1]) + 1
        raise SetupError(_describe(exc, text), line, column) from None
    return _ToAst().transform(tree)
