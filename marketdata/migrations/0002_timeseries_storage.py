"""Time-series storage for ticks and bars.

TimescaleDB present (and TIMESCALEDB != 0): both tables become hypertables with 1-day chunks
(the primary key is widened to include `ts`, as hypertables require), with compression and
retention policies from settings. Plain PostgreSQL: BRIN indexes on `ts`. SQLite: nothing.
"""

from django.conf import settings
from django.db import migrations


def _timescale_available(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return cursor.fetchone() is not None


def forwards(apps, schema_editor):
    conn = schema_editor.connection
    if conn.vendor != "postgresql":
        return
    with conn.cursor() as cursor:
        use_timescale = settings.TIMESCALEDB != "0" and _timescale_available(cursor)
        if settings.TIMESCALEDB == "1" and not use_timescale:
            raise RuntimeError("TIMESCALEDB=1 but the timescaledb extension is not available")
        if not use_timescale:
            cursor.execute("CREATE INDEX IF NOT EXISTS ticks_ts_brin ON ticks USING brin (ts)")
            cursor.execute("CREATE INDEX IF NOT EXISTS bars_1m_ts_brin ON bars_1m USING brin (ts)")
            return
        cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        interval = settings.TIMESCALE_CHUNK_INTERVAL
        for table in ("ticks", "bars_1m"):
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_pkey")
            cursor.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id, ts)")
            cursor.execute(
                "SELECT create_hypertable(%s, 'ts', chunk_time_interval => %s::interval,"
                " migrate_data => true, if_not_exists => true)",
                [table, interval],
            )
            if settings.TIMESCALE_COMPRESS_AFTER_DAYS:
                cursor.execute(
                    f"ALTER TABLE {table} SET (timescaledb.compress,"
                    " timescaledb.compress_segmentby = 'symbol')"
                )
                cursor.execute(
                    "SELECT add_compression_policy(%s, %s::interval, if_not_exists => true)",
                    [table, f"{settings.TIMESCALE_COMPRESS_AFTER_DAYS} days"],
                )
        retention = {
            "ticks": settings.TIMESCALE_TICKS_RETENTION_DAYS,
            "bars_1m": settings.TIMESCALE_BARS_RETENTION_DAYS,
        }
        for table, days in retention.items():
            if days:
                cursor.execute(
                    "SELECT add_retention_policy(%s, %s::interval, if_not_exists => true)",
                    [table, f"{days} days"],
                )


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
