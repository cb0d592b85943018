from django.urls import path

from risk import views

urlpatterns = [
    path("signals", views.SignalListOrPreviewApi.as_view(), name="signal-list"),
    path("signals/preview", views.SignalPreviewApi.as_view(), name="signal-preview"),
    path("config/effective", views.EffectiveConfigApi.as_view(), name="config-effective"),
    path("risk/preview", views.RiskPreviewApi.as_view(), name="risk-preview"),
    path("trading/state", views.TradingStateApi.as_view(), name="trading-state"),
    path("trading/halt", views.TradingHaltApi.as_view(), name="trading-halt"),
    path("trading/resume", views.TradingResumeApi.as_view(), name="trading-resume"),
]
