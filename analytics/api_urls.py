from django.urls import path

from analytics import views

urlpatterns = [
    path("diag/health", views.HealthApi.as_view(), name="diag-health"),
    path("diag/providers", views.ProvidersApi.as_view(), name="diag-providers"),
    path("stats/setups", views.SetupStatsApi.as_view(), name="stats-setups"),
]
