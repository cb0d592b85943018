"""Broker implementations behind one interface (`trading.brokers.base.Broker`)."""

from __future__ import annotations

from django.conf import settings

from trading.brokers.base import Broker

_override: Broker | None = None
_default: Broker | None = None


def broker_get() -> Broker:
    """The broker in use: the paper broker when DRY_RUN=1, else Tradier (or a test override)."""
    global _default
    if _override is not None:
        return _override
    if _default is None:
        if settings.DRY_RUN:
            from trading.brokers.paper import PaperBroker

            _default = PaperBroker()
        else:
            from trading.brokers.tradier import TradierBroker

            _default = TradierBroker.from_settings()
    return _default


def broker_override(broker: Broker | None) -> None:
    """Use `broker` instead of the configured one (tests, backtests); None restores."""
    global _override
    _override = broker
