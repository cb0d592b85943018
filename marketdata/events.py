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
# Sent with `bars=list[BarData]` after they are stored: the bars a stream flush closed together
# (a minute of a universe), so the pipeline can enqueue one task per shard instead of per bar.
bars_closed = django.dispatch.Signal()
# Sent with `now=datetime` when a replay's clock passes a minute boundary (the exit manager's
# beat of a live session): the clock rules need no bar.
clock_ticked = django.dispatch.Signal()


def publish_clock_tick(now) -> None:
    """Tell the later stages the (replay) clock reached `now`."""
    clock_ticked.send(sender=BarData, now=now)


def symbol_group(symbol: str) -> str:
    return f"bars.{symbol.upper()}"


def _dashboard_send(bar: BarData) -> None:
    try:  # through the process's kept loop: one Redis connection, not one per bar
        group_send(symbol_group(bar.symbol), {"type": "bar.closed", "bar": bar.as_event()})
    except Exception:  # a dashboard outage must never stop trading
        log.exception("channel layer publish failed for %s %s", bar.symbol, bar.ts)


def publish_bar_closed(bar: BarData) -> None:
    """Tell the dashboard and the strategy pipeline that `bar` has closed and is stored."""
    _dashboard_send(bar)
    bar_closed.send(sender=BarData, bar=bar)


def publish_bars_closed(bars: list[BarData]) -> None:
    """`publish_bar_closed` for bars closed together: the pipeline gets ONE `bars_closed`
    dispatch with the list (a task per bar cost ~29 ms of worker CPU in Celery overhead alone,
    docs/deploy.md), the dashboard one message per bar (its groups are per symbol) after it, so
    a minute's hundreds of dashboard sends do not delay the decisions."""
    bars = list(bars)
    if not bars:
        return
    try:
        bars_closed.send(sender=BarData, bars=bars)
    finally:
        for bar in bars:
            _dashboard_send(bar)
