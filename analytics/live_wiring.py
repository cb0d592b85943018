"""Model saves that change what the dashboard shows → `live_event_publish` (after commit).

Hooked on post_save/post_delete so every stage that writes the ledger through the ORM (orders,
fills, positions, trades, account snapshots, the trading state, the signal journal) pushes the
open pages without knowing about them. Bulk writes (`bulk_create`, `update()`) send no model
signals: code that writes that way calls `autotrader_site.live_events.live_event_publish` itself.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from autotrader_site.live_events import live_event_publish


def _models_by_kind() -> dict:
    from risk.models import TradingState
    from strategies.models import Signal
    from trading.models import AccountSnapshot, Fill, Order, Position, Trade

    return {
        Order: "order",
        Fill: "fill",
        Position: "position",
        Trade: "trade",
        AccountSnapshot: "account",
        TradingState: "trading_state",
        Signal: "signal",
    }


def live_receivers_connect() -> None:
    for model, kind in _models_by_kind().items():

        def receiver(sender, instance=None, using=None, _kind=kind, **kwargs):
            live_event_publish(kind=_kind, using=using or "default")

        uid = f"analytics.live.{model._meta.label_lower}"
        post_save.connect(receiver, sender=model, weak=False, dispatch_uid=uid + ".save")
        post_delete.connect(receiver, sender=model, weak=False, dispatch_uid=uid + ".delete")
