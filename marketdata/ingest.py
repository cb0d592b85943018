"""Bulk writes of ticks and bars with PostgreSQL COPY.

The path: COPY the batch into a session-local temp staging table (no WAL, no indexes), then one
`INSERT … SELECT DISTINCT ON … ON CONFLICT DO UPDATE … WHERE IS DISTINCT FROM` into the real
table — late duplicates update in place, identical re-runs write nothing.

When the batch's (symbol, time range, source) is still empty in the target (a first load), the
rows are COPYed straight into the table inside a savepoint; a unique violation (a concurrent
writer, or duplicates inside the batch) rolls the savepoint back and the staging path runs.
Other databases (SQLite, the embedded default) use the ORM.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from psycopg import errors as pg_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableSpec:
    table: str
    columns: tuple[str, ...]  # as COPYed, in order
    key: tuple[str, ...]  # the unique constraint
    stage_types: tuple[str, ...]
    extra_insert: tuple[tuple[str, str], ...] = ()  # (column, SQL expression) added on insert

    @property
    def updates(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.key)

    @property
    def stage(self) -> str:
        return f"{self.table}_stage"


BARS = TableSpec(
    table="bars_1m",
    columns=(
        "symbol",
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "trades",
        "source",
        "provisional",
    ),
    key=("symbol", "ts", "source"),
    stage_types=(
        "varchar(32)",
        "timestamptz",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "integer",
        "varchar(24)",
        "boolean",
    ),
)

TICKS = TableSpec(
    table="ticks",
    columns=(
        "symbol",
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "avg_trade_size",
        "source",
    ),
    key=("symbol", "ts", "source"),
    stage_types=(
        "varchar(32)",
        "timestamptz",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "float8",
        "varchar(24)",
    ),
    extra_insert=(("received_at", "now()"),),
)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _ensure_stage(cursor, spec: TableSpec) -> None:
    cols = ", ".join(f"{c} {t}" for c, t in zip(spec.columns, spec.stage_types, strict=True))
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {spec.stage} ({cols}, seq bigserial)"
        " ON COMMIT DELETE ROWS"
    )


def _copy_rows(cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    count = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _range_is_empty(cursor, spec: TableSpec, rows: Sequence[Sequence]) -> bool:
    symbols = {r[0] for r in rows}
    at = spec.columns.index("source")
    sources = {r[at] for r in rows}
    times = [r[1] for r in rows]
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {spec.table} WHERE symbol = ANY(%s) AND source = ANY(%s)"
        " AND ts BETWEEN %s AND %s)",
        [list(symbols), list(sources), min(times), max(times)],
    )
    return not cursor.fetchone()[0]


def merge_stage(cursor, spec: TableSpec, *, select_sql: str | None = None) -> int:
    """Upsert the staging table into the target; returns rows inserted or changed.
    `select_sql` overrides how staged rows map to the target columns (flat files)."""
    cols = ", ".join(spec.columns)
    key = ", ".join(spec.key)
    extra_cols = "".join(f", {c}" for c, _ in spec.extra_insert)
    extra_vals = "".join(f", {expr}" for _, expr in spec.extra_insert)
    source = select_sql or (
        f"SELECT DISTINCT ON ({key}) {cols} FROM {spec.stage} ORDER BY {key}, seq DESC"
    )
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in spec.updates)
    current = ", ".join(f"{spec.table}.{c}" for c in spec.updates)
    incoming = ", ".join(f"EXCLUDED.{c}" for c in spec.updates)
    cursor.execute(
        f"INSERT INTO {spec.table} ({cols}{extra_cols})"
        f" SELECT {cols}{extra_vals} FROM ({source}) AS s"
        f" ON CONFLICT ({key}) DO UPDATE SET {sets}"
        f" WHERE ({current}) IS DISTINCT FROM ({incoming})"
    )
    changed = cursor.rowcount
    cursor.execute(f"TRUNCATE {spec.stage}")
    return changed


def copy_upsert(spec: TableSpec, rows: Sequence[Sequence]) -> int:
    """Upsert `rows` (tuples in `spec.columns` order) into `spec.table` on PostgreSQL.
    Returns the number of rows inserted or changed."""
    if not rows:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        if not spec.extra_insert and _range_is_empty(cursor, spec, rows):
            try:
                with transaction.atomic():  # savepoint
                    return _copy_rows(cursor, spec.table, spec.columns, rows)
            except (pg_errors.UniqueViolation, IntegrityError):  # Django wraps it, or not
                log.info("%s: direct COPY hit a duplicate; using the staging merge", spec.table)
        _ensure_stage(cursor, spec)
        _copy_rows(cursor, spec.stage, spec.columns, rows)
        return merge_stage(cursor, spec)


def bar_rows(bars: Iterable) -> list[tuple]:
    return [
        (
            b.symbol,
            b.ts,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.vwap,
            b.trades,
            b.source,
            b.provisional,
        )
        for b in bars
    ]
