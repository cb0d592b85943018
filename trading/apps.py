import logging

from django.apps import AppConfig

log = logging.getLogger(__name__)


class TradingConfig(AppConfig):
    name = "trading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from marketdata.events import bar_closed, bars_closed, clock_ticked
        from risk.services import exposure_provider_set
        from trading import signals_wiring

        bar_closed.connect(signals_wiring.bar_closed_receiver, dispatch_uid="trading.on_bar_closed")
        bars_closed.connect(
            signals_wiring.bars_closed_receiver, dispatch_uid="trading.on_bars_closed"
        )
        clock_ticked.connect(
            signals_wiring.clock_ticked_receiver, dispatch_uid="trading.on_clock_ticked"
        )
        exposure_provider_set(signals_wiring.exposure_now)
        post_migrate.connect(signals_wiring.schedules_after_migrate, sender=self)
        signals_wiring.celery_hooks_connect()
