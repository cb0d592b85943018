from django.urls import re_path

from strategies import views

# The list `signals` is routed by risk.api_urls: its preview mode needs the risk checks.
urlpatterns = [
    re_path(
        r"^signals/(?P<pk>[0-9]{1,18})$", views.SignalDetailApi.as_view(), name="signal-detail"
    ),
]
