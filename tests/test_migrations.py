"""The schema: migrations match the models and apply on an empty PostgreSQL database."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_time_series_tables_have_time_indexes_on_postgresql():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        timescale = cursor.fetchone() is not None
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename IN ('ticks', 'bars_1m')")
        names = {row[0] for row in cursor.fetchall()}
    if timescale:  # hypertables index time themselves
        pytest.skip("TimescaleDB present: hypertables instead of BRIN indexes")
    assert {"ticks_ts_brin", "bars_1m_ts_brin"} <= names
