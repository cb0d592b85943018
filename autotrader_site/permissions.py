"""Who may call the API, and how often.

Reads need a logged-in user (the REST_FRAMEWORK default), writes the model permission
`trading.can_trade`, bypassing risk (`force`) a superuser. Writes and logins are throttled with
the rates of REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.throttling import SimpleRateThrottle

TRADE_PERMISSION = "trading.can_trade"


class CanTrade(BasePermission):
    """Safe methods: any authenticated user; anything else: `trading.can_trade`."""

    message = "You need the permission trading.can_trade to change orders or trading state."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        return user.has_perm(TRADE_PERMISSION)


def is_superuser(user) -> bool:
    return bool(user and user.is_authenticated and user.is_superuser)


class WriteThrottle(SimpleRateThrottle):
    """Per-user (or per-IP when anonymous) budget for state-changing requests."""

    scope = "writes"

    def allow_request(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str:
        if request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class LoginThrottle(SimpleRateThrottle):
    """Per-IP budget for credential checks (token endpoint), against password guessing."""

    scope = "login"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def login_throttled(view):
    """Wrap a Django login view (admin, browsable API) with the login budget on POST."""
    from functools import wraps

    from django.http import HttpResponse

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method == "POST":
            throttle = LoginThrottle()
            if not throttle.allow_request(request, None):
                wait = throttle.wait()
                response = HttpResponse(
                    "Too many login attempts; try again later.\n",
                    status=429,
                    content_type="text/plain",
                )
                if wait:
                    response["Retry-After"] = str(int(wait) + 1)
                return response
        return view(request, *args, **kwargs)

    return wrapper
