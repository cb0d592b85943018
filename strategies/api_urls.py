from django.urls import path

from strategies import views

# The list `signals` is routed by risk.api_urls: its preview mode needs the risk checks.
urlpatterns = [
    path("signals/<int:pk>", views.SignalDetailApi.as_view(), name="signal-detail"),
]
