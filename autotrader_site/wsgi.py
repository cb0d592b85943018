"""WSGI entry point (the ASGI app in asgi.py is the one production serves)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
application = get_wsgi_application()
