"""API v1 routes, gathered from each app's `api_urls` module."""

from django.urls import include, path

urlpatterns = [
    path("", include("analytics.api_urls")),
    path("", include("analytics.api")),
    path("", include("marketdata.api_urls")),
    path("", include("strategies.api_urls")),
    path("", include("risk.api_urls")),
    path("", include("trading.api_urls")),
]
