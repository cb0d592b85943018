from django.urls import re_path

from strategies import setup_views, views

NAME = r"(?P<name>[A-Z][A-Z0-9_]{0,31})"

# The list `signals` is routed by risk.api_urls: its preview mode needs the risk checks.
urlpatterns = [
    re_path(
        r"^signals/(?P<pk>[0-9]{1,18})$", views.SignalDetailApi.as_view(), name="signal-detail"
    ),
    re_path(r"^setups$", setup_views.SetupListApi.as_view(), name="setup-list"),
    re_path(r"^setups/validate$", setup_views.SetupValidateApi.as_view(), name="setup-validate"),
    re_path(rf"^setups/{NAME}/enable$", setup_views.SetupEnableApi.as_view(), name="setup-enable"),
    re_path(rf"^setups/{NAME}/live$", setup_views.SetupLiveApi.as_view(), name="setup-live"),
    re_path(
        rf"^setups/{NAME}/preview$", setup_views.SetupPreviewApi.as_view(), name="setup-preview"
    ),
    re_path(rf"^setups/{NAME}/audit$", setup_views.SetupAuditApi.as_view(), name="setup-audit"),
]
