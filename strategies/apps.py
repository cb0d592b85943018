from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    name = "strategies"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A bad SESSION_POLICY_FILE must stop start-up, naming file, session and field.
        from strategies.policies import policy_book

        policy_book()
