from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "risk"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Parse QTY_<SYM>/STOP_<SYM>/TP_<SYM>/TRAIL_<SYM>/TRAIL_ACT_<SYM> now: a bad value stops
        # start-up with ImproperlyConfigured naming the variable.
        from risk.config import RiskConfig as Config

        Config.from_settings()
