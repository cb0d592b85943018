"""`analytics.signals.summarize_signals`: the entry point the original README names
(`from app.analytics.signals import summarize_signals`)."""

from __future__ import annotations

from analytics import summarize_signals

__all__ = ["summarize_signals"]
