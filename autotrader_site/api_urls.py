"""API v1 routes, gathered from each app's `api_urls` module, plus the token endpoint."""

from django.http import JsonResponse
from django.urls import include, path, re_path
from drf_spectacular.utils import extend_schema
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny

from autotrader_site.permissions import LoginThrottle


class AuthTokenApi(ObtainAuthToken):
    """POST username + password → the user's API token (send it as `Authorization: Token …`).
    Throttled per client address (API_LOGIN_THROTTLE)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(auth=[])
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


def api_not_found(request, rest: str = ""):
    """Unknown API paths answer JSON like every other API error, not Django's HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)


urlpatterns = [
    path("auth/token", AuthTokenApi.as_view(), name="auth-token"),
    path("", include("analytics.api_urls")),
    path("", include("analytics.api")),
    path("", include("marketdata.api_urls")),
    path("", include("analytics.setup_backtest")),
    path("", include("strategies.api_urls")),
    path("", include("risk.api_urls")),
    path("", include("trading.api_urls")),
    re_path(r"^(?P<rest>.*)$", api_not_found),
]
