import logging

from django.apps import AppConfig

log = logging.getLogger(__name__)

# After the New York close in both EST (21:00 UTC) and EDT (20:00 UTC), Monday to Friday.
SESSION_LABELS_CRONTAB = "30 21 * * 1-5"
# The drift ledger pairs the day's live/paper trades with their simulation once the day's bars
# are all stored (after the close in both EST and EDT), Monday to Friday.
DRIFT_LEDGER_CRONTAB = "45 21 * * 1-5"


def _schedules_ensure(sender, **kwargs) -> None:
    """The daily session-labelling and drift-ledger jobs, and the reaper of analysis runs a
    dead worker left `running`, in beat's database (idempotent, after migrate)."""
    try:
        from trading.schedules import schedule_ensure

        schedule_ensure(
            "autotrader: session labels",
            "analytics.session_labels_daily",
            crontab=SESSION_LABELS_CRONTAB,
        )
        schedule_ensure(
            "autotrader: drift ledger",
            "analytics.drift_ledger_daily",
            crontab=DRIFT_LEDGER_CRONTAB,
        )
        schedule_ensure("autotrader: reap analysis runs", "analytics.runs_reap", every_sec=600)
    except Exception:  # a missing beat table must never break migrate
        log.exception("could not create the analytics schedules")


class AnalyticsConfig(AppConfig):
    name = "analytics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        post_migrate.connect(_schedules_ensure, sender=self, dispatch_uid="analytics.schedules")
        from analytics.live_wiring import live_receivers_connect

        live_receivers_connect()  # ledger and journal saves push the open dashboards
