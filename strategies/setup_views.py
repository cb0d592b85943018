"""Setup endpoints: list, create/edit, validate, enable/disable, approve for live, preview.

Reads: any logged-in user. Creating, editing and enabling: the model permission
`strategies.change_usersetup`. Approving a version for live trading: `trading.can_trade`.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from autotrader_site.permissions import TRADE_PERMISSION
from strategies.dsl.ast import SetupError
from strategies.models import SetupAudit
from strategies.setup_services import (
    setup_enable,
    setup_go_live,
    setup_preview,
    setup_to_paper,
    setup_validate,
    user_setup_save,
)
from strategies.setups.registry import setups_all, setups_broken

EDIT_PERMISSION = "strategies.change_usersetup"


def _need(request, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"You need the permission {perm}.")


def _entry_dict(e) -> dict:
    return {
        "name": e.name,
        "kind": e.kind,
        "source": e.source,
        "version": e.version,
        "enabled": e.enabled,
        "mode": e.mode,
        "text": e.text,
        "error": e.error or None,
        "line": e.line,
        "column": e.column,
    }


def _error(exc: SetupError) -> Response:
    return Response(
        {"valid": False, "error": exc.message, "line": exc.line, "column": exc.column},
        status=status.HTTP_400_BAD_REQUEST,
    )


class DefinitionInput(serializers.Serializer):
    text = serializers.CharField(max_length=20_000)
    enabled = serializers.BooleanField(required=False, allow_null=True, default=None)


class SetupListApi(APIView):
    """GET: every setup (and the ones that failed to load); POST {text}: create or edit an
    admin setup (starts in paper mode)."""

    serializer_class = DefinitionInput

    def get(self, request):
        rows = [_entry_dict(e) for e in setups_all().values()]
        rows += [_entry_dict(e) for e in setups_broken()]
        return Response({"results": rows, "dry_run": settings.DRY_RUN})

    def post(self, request):
        _need(request, EDIT_PERMISSION)
        data = DefinitionInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            row = user_setup_save(
                text=data.validated_data["text"],
                actor=request.user.get_username(),
                enabled=data.validated_data["enabled"],
            )
        except SetupError as exc:
            return _error(exc)
        entry = setups_all()[row.name]
        return Response(_entry_dict(entry), status=status.HTTP_201_CREATED)


class SetupValidateApi(APIView):
    """POST {text}: is it a valid definition? (line and column of the first error)."""

    serializer_class = DefinitionInput

    def post(self, request):
        data = DefinitionInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = setup_validate(data.validated_data["text"])
        return Response(result, status=200 if result["valid"] else 400)


class EnableInput(serializers.Serializer):
    enabled = serializers.BooleanField()


class SetupEnableApi(APIView):
    serializer_class = EnableInput

    def post(self, request, name: str):
        _need(request, EDIT_PERMISSION)
        data = EnableInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            setup_enable(
                name=name, enabled=data.validated_data["enabled"],
                actor=request.user.get_username(),
            )  # fmt: skip
        except SetupError as exc:
            return _error(exc)
        return Response(_entry_dict(setups_all()[name]))


class LiveInput(serializers.Serializer):
    version = serializers.CharField(max_length=16, required=False, allow_blank=True)
    live = serializers.BooleanField(default=True)


class SetupLiveApi(APIView):
    """POST {version, live}: approve that version for live trading (trading permission), or
    send the setup back to paper ({live: false})."""

    serializer_class = LiveInput

    def post(self, request, name: str):
        _need(request, TRADE_PERMISSION)
        data = LiveInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            if data.validated_data["live"]:
                setup_go_live(
                    name=name, version=data.validated_data.get("version", ""), user=request.user
                )
            else:
                setup_to_paper(name=name, actor=request.user.get_username())
        except SetupError as exc:
            return _error(exc)
        return Response(_entry_dict(setups_all()[name]))


class PreviewInput(serializers.Serializer):
    symbol = serializers.CharField(max_length=16, default="SPY")
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)


class SetupPreviewApi(APIView):
    """GET ?symbol=&start=&end=: where the setup would have fired on stored bars, as chart
    markers ({time, position, shape, text} like the dashboard's markers) plus the levels."""

    serializer_class = PreviewInput

    def get(self, request, name: str):
        data = PreviewInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            fires = setup_preview(
                name=name, symbol=v["symbol"], start=v.get("start"), end=v.get("end")
            )
        except SetupError as exc:
            return _error(exc)
        markers = [
            {
                "time": f["time"],
                "position": "belowBar",
                "shape": "arrowUp",
                "color": "#1565c0",
                "text": name,
            }  # fmt: skip
            for f in fires
        ]
        return Response({"setup": name, "symbol": v["symbol"].upper(), "fires": fires,
                         "markers": markers})  # fmt: skip


class SetupAuditApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, name: str):
        rows = SetupAudit.objects.filter(setup=name).values(
            "at", "actor", "version", "action", "detail"
        )[:200]
        return Response({"setup": name, "results": list(rows)})
