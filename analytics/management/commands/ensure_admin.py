"""Make sure an admin login exists (ADMIN_USERNAME / ADMIN_PASSWORD, else a generated one)."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the admin superuser if missing; print generated credentials once."

    def handle(self, *args, **options):
        user_model = get_user_model()
        username = settings.ADMIN_USERNAME or "admin"
        password = settings.ADMIN_PASSWORD
        user = user_model.objects.filter(username=username).first()
        if user is None:
            generated = not password
            password = password or secrets.token_urlsafe(12)
            user_model.objects.create_superuser(username=username, email="", password=password)
            if generated:
                creds = settings.STATE_DIR / "admin_credentials.txt"
                creds.write_text(f"{username}\n{password}\n")
                creds.chmod(0o600)
                self.stdout.write(
                    self.style.WARNING(
                        f"Created admin login  user: {username}  password: {password}"
                        f"  (saved to {creds}; set ADMIN_PASSWORD to choose your own)"
                    )
                )
            else:
                self.stdout.write(f"Created admin login {username!r} from ADMIN_PASSWORD")
        elif password and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(f"Admin {username!r}: password updated from ADMIN_PASSWORD")
        else:
            self.stdout.write(f"Admin login {username!r} exists")
