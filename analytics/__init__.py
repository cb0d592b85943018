"""Analytics: the signal journal summarised, replay expectancy, the backtester, sweeps and
session labels. `summarize_signals` is the entry point named in the spec's README."""

from __future__ import annotations


def summarize_signals(start=None, end=None) -> dict:
    """Counts of journaled signals by setup × outcome and block reasons over [start, end)."""
    from analytics.selectors import signals_summarize

    return signals_summarize(start=start, end=end)
