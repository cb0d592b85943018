"""What the health endpoint tells the wiring above the apps."""

from django.dispatch import Signal

# sent by the health endpoint (probes poll it) with `now`: where stalls alert
health_checked = Signal()
