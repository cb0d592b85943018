"""Celery tasks of market data (thin: they call services)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import pandas as pd
from celery import shared_task
from django.conf import settings

from autotrader_site.clock import clock
from marketdata.calendar import xnys

log = logging.getLogger(__name__)


def previous_session(now: datetime) -> date:
    """The last XNYS session that closed before `now`."""
    cal = xnys()
    day = pd.Timestamp(now.date())
    for _ in range(10):
        if cal.is_session(day) and cal.session_close(day).to_pydatetime() <= now:
            return day.date()
        day -= pd.Timedelta(days=1)
    raise RuntimeError(f"no session in the 10 days before {now}")


@shared_task(name="marketdata.backfill_previous_session")
def backfill_previous_session(symbols: list[str] | None = None) -> dict:
    """Nightly: load the previous session's minute bars — flat files when their credentials
    are set, else REST (Polygon aggregates / Tradier timesales) as source=rest_backfill,
    replacing the stream's rows of those minutes (the last heal of anything provisional)."""
    from marketdata.gaps import rest_fetch_default
    from marketdata.services import bars_heal, flatfiles_backfill

    day = previous_session(clock.now())
    symbols = symbols or list(settings.POLYGON_WS_SYMBOLS)
    if settings.POLYGON_FLATFILES_ACCESS_KEY:
        results = flatfiles_backfill(start=day, end=day, symbols=symbols)
        if all(not r.missing for r in results):
            return {
                "day": day.isoformat(),
                "via": "flatfiles",
                "rows": sum(r.written for r in results),
            }
        log.warning("flat files for %s not published yet; using REST", day)
    cal = xnys()
    start = cal.session_open(pd.Timestamp(day)).to_pydatetime()
    end = cal.session_close(pd.Timestamp(day)).to_pydatetime() - timedelta(minutes=1)
    rows = 0
    for symbol in symbols:
        # the provider's bars replace the stream's rows of the same minutes (one row each)
        rows += bars_heal(bars=rest_fetch_default(symbol, start, end))
    return {"day": day.isoformat(), "via": "rest", "rows": rows}
