from django.apps import AppConfig


class WiringConfig(AppConfig):
    name = "wiring"
    verbose_name = "Project wiring (alerts, routes)"

    def ready(self) -> None:
        from analytics.health import health_checked
        from wiring.alerts import alert_receivers_connect, alerts_watch_on_health

        alert_receivers_connect()  # webhook alerts on rejected orders and trading-state changes
        health_checked.connect(alerts_watch_on_health, dispatch_uid="wiring.alerts_watch")
