"""Create (or update) the periodic jobs in django-celery-beat's database. Idempotent."""

from django.core.management.base import BaseCommand

from trading.schedules import schedules_default_ensure


class Command(BaseCommand):
    help = "Create or update the AutoTrader periodic tasks (scan, exits, reconcile, ...)."

    def handle(self, *args, **options):
        for name in schedules_default_ensure():
            self.stdout.write(f"ensured {name}")
