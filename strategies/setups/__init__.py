"""Setups: definitions (built-in YAML in `builtin/`, SETUPS_DIR files, the admin) and Python
plug-ins, all behind one registry (`registry.py`); `definition.py` compiles a definition to its
per-bar and vectorised evaluators.

`SETUPS[name](row, ctx, cfg)` is the row-level view the fast backtest's ledger path uses to get
a fired bar's levels from the setup itself: it re-checks the condition's clauses that need no
history (history clauses were decided by the vectorised evaluator that chose the bar) and
computes entry, stop and targets from the definition.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from strategies.setups.base import FIRED, NOT_FIRED, WARMING_UP, Decision, SetupContext


def _row_decision(name: str, row: dict, ctx: SetupContext, cfg) -> Decision:
    from strategies.dsl.compiler import bar_of, has_state, unparse
    from strategies.setups.registry import setup_get

    entry = setup_get(name)
    if entry is None:
        raise KeyError(f"unknown setup {name}")
    prog = entry.program(cfg)
    if not hasattr(prog, "clauses"):
        raise KeyError(f"{name} is a plug-in: use its evaluators, not a single row")
    missing = [n for n in sorted(prog.features) if n in row and row[n] != row[n]]
    if missing:
        return Decision(name, WARMING_UP, [f"warming up: {', '.join(missing)}"])
    consts = prog.condition.constants
    local = ctx.close_et
    row = {
        **row,
        "minute": local.hour * 60 + local.minute - 571,  # session minute of the bar's start
        "session_date": local.date(),
    }
    failed = [
        unparse(c)
        for c in prog.clauses
        if not has_state(c) and _names_known(c, row) and not bar_of(c, consts, ctx.symbol)(row)
    ]
    if failed:
        return Decision(name, NOT_FIRED, [f"not met: {t}" for t in failed])
    stop, t1, t2 = (
        prog.levels[k].bar(ctx.symbol)(row) for k in ("stop", "target_one", "target_two")
    )
    return Decision(name, FIRED, [prog.reason], row["close"], stop, t1, t2, prog.version)


def _names_known(clause, row: dict) -> bool:
    from strategies.setups.definition import _names_in

    return all(n in row or n.isupper() for n in _names_in(clause))


class _RowSetups(Mapping):
    def __getitem__(self, name: str):
        from strategies.setups.registry import setup_get

        if setup_get(name) is None:
            raise KeyError(name)
        return lambda row, ctx, cfg: _row_decision(name, row, ctx, cfg)

    def __iter__(self) -> Iterator[str]:
        from strategies.setups.registry import setups_all

        return iter(setups_all())

    def __len__(self) -> int:
        from strategies.setups.registry import setups_all

        return len(setups_all())


SETUPS = _RowSetups()

__all__ = ["SETUPS", "Decision", "SetupContext", "FIRED", "NOT_FIRED", "WARMING_UP"]
