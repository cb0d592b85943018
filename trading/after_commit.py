"""Broker sends wait for the commit of the transaction that decided them.

A send made inside a transaction that is then rolled back (its connection killed) leaves no
record of itself, so the retry sends again: a doubled order at the broker. `atomic()` is the
transaction of ledger writes that may place orders (a fill's protective stop, a reconciliation
correction, an account event); `after_commit(fn)` runs `fn` at once when no transaction of
ours is open, else once the outermost one has committed, and never when it rolls back.

The transaction a test runner wraps each test in is not one of ours (Django marks it): a test
sees the send when the code's own transaction ends, as production does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection, transaction

_local = threading.local()


def _state():
    if not hasattr(_local, "jobs"):
        _local.jobs, _local.depth = [], 0
    return _local


def transaction_open() -> bool:
    """A transaction the code opened is open (the test runner's wrapping one excluded)."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def after_commit(fn: Callable[[], object]) -> None:
    """Run `fn` now when no transaction of ours is open, else after the outermost commits."""
    state = _state()
    if state.depth:
        state.jobs.append((state.depth, fn))
    elif transaction_open():
        transaction.on_commit(fn)  # a plain transaction.atomic of some caller
    else:
        fn()


@contextmanager
def atomic() -> Iterator[None]:
    """`transaction.atomic()` whose deferred sends run after the outermost one commits; a
    rolled-back block (or one nested in it) drops the sends it deferred."""
    state = _state()
    state.depth += 1
    level = state.depth
    try:
        with transaction.atomic():
            yield
    except BaseException:
        state.jobs = [(depth, fn) for depth, fn in state.jobs if depth < level]
        raise
    finally:
        state.depth -= 1
    if state.depth == 0:
        jobs, state.jobs = state.jobs, []
        for _, fn in jobs:
            after_commit(fn)
