from django.urls import path

from analytics import views

urlpatterns = [
    path("diag/health", views.HealthApi.as_view(), name="diag-health"),
]
