"""Top-level routes: admin, API v1, OpenAPI, metrics. (`/` is the dashboard's, wired by its app.)"""

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from autotrader_site.metrics_view import metrics_view
from autotrader_site.permissions import login_throttled

urlpatterns = [
    # Credential checks share the login budget (API_LOGIN_THROTTLE) with POST /api/v1/auth/token.
    path("admin/login/", login_throttled(admin.site.login)),
    path(
        "api-auth/login/",
        login_throttled(LoginView.as_view(template_name="rest_framework/login.html")),
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("autotrader_site.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api_docs/redoc.html"),
        name="redoc",
    ),
    path("api-auth/", include("rest_framework.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("", include("analytics.dashboard")),
]
