"""The bar-close event: the one path by which the stream and the replay feed hand bars on.

`marketdata` does not know who listens (imports follow the data flow); later stages connect to
`bar_closed` in their AppConfig.ready(). Live updates also go to the channel layer, one group per
symbol (`bars.<SYMBOL>`), for the dashboard.
"""

from __future__ import annotations

import logging

import django.dispatch

from autotrader_site.live_events import group_send
from marketdata.types import BarData

log = logging.getLogger(__name__)

# Sent with `bar=BarData` after the bar is stored.
bar_closed = django.dispatch.Signal()
# Sent with `now=datetime` when a replay's clock passes a minute boundary (the exit manager's
# beat of a live session): the clock rules need no bar.
clock_ticked = django.dispatch.Signal()


def publish_clock_tick(now) -> None:
    """Tell the later stages the (replay) clock reached `now`."""
    clock_ticked.send(sender=BarData, now=now)


def symbol_group(symbol: str) -> str:
    return f"bars.{symbol.upper()}"


def publish_bar_closed(bar: BarData) -> None:
    """Tell the dashboard and the strategy pipeline that `bar` has closed and is stored."""
    try:  # through the process's kept loop: one Redis connection, not one per bar
        group_send(symbol_group(bar.symbol), {"type": "bar.closed", "bar": bar.as_event()})
    except Exception:  # a dashboard outage must never stop trading
        log.exception("channel layer publish failed for %s %s", bar.symbol, bar.ts)
    bar_closed.send(sender=BarData, bar=bar)
