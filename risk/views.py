"""Risk endpoints: effective configuration, risk preview, and the trading state (halt/resume)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from autotrader_site.permissions import CanTrade, WriteThrottle
from marketdata.serializers import PositivePriceField, SymbolField, symbol_normalise
from risk import selectors, services
from risk.models import TradingMode
from risk.serializers import (
    RiskPreviewOutputSerializer,
    TradingStateOutputSerializer,
)
from strategies import services as strategy_services
from strategies.views import SignalListApi


def mask_secret(value: str) -> str:
    """`VA12345678` → `VA…5678`; short or empty values reveal nothing."""
    if not value:
        return ""
    if len(value) <= 8:
        return "***"
    return f"{value[:2]}…{value[-4:]}"


def _service_facts() -> dict:
    """Non-risk settings an operator needs to read the effective config; secrets masked."""
    return {
        "dry_run": settings.DRY_RUN,
        "tradier_env": settings.TRADIER_ENV,
        "tradier_account_id": mask_secret(settings.TRADIER_ACCOUNT_ID),
        "tradier_access_token": "set" if settings.TRADIER_ACCESS_TOKEN else "unset",
        "polygon_api_key": "set" if settings.POLYGON_API_KEY else "unset",
        "use_polygon_equity": settings.USE_POLYGON_EQUITY,
        "symbols": settings.SYMBOLS,
        "symbol_execution_map": settings.SYMBOL_EXECUTION_MAP,
        "enabled_setups": settings.ENABLED_SETUPS,
        "order_qty": settings.ORDER_QTY,
        "strategy_interval": settings.STRATEGY_INTERVAL,
        "session_policy_file": bool(settings.SESSION_POLICY_FILE),
    }


class EffectiveConfigApi(APIView):
    """Every risk value that applies (to `symbol` when given) and where it came from."""

    class EffectiveConfigFilterSerializer(serializers.Serializer):
        symbol = SymbolField(required=False)

    @extend_schema(
        parameters=[EffectiveConfigFilterSerializer],
        responses=inline_serializer(
            "EffectiveConfig",
            {
                "symbol": serializers.CharField(allow_null=True),
                "values": serializers.DictField(),
                "service": serializers.DictField(),
                "trading_state": serializers.CharField(),
            },
        ),
    )
    def get(self, request):
        params = self.EffectiveConfigFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        config = selectors.effective_config(symbol=params.validated_data.get("symbol"))
        config["service"] = _service_facts()
        config["trading_state"] = selectors.trading_state_get().state
        return Response(config)


class RiskPreviewApi(APIView):
    """What the risk rules would say about buying `qty` of `symbol` now (read-only)."""

    class RiskPreviewFilterSerializer(serializers.Serializer):
        symbol = SymbolField()
        qty = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
        price = PositivePriceField(required=False)
        stop_price = PositivePriceField(required=False)

    @extend_schema(parameters=[RiskPreviewFilterSerializer], responses=RiskPreviewOutputSerializer)
    def get(self, request):
        params = self.RiskPreviewFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        result = services.risk_preview(**params.validated_data)
        return Response(RiskPreviewOutputSerializer(result).data)


def _state_payload() -> dict:
    row = selectors.trading_state_get()
    return {
        "account": row.account,
        "state": row.state,
        "reason": row.reason,
        "changed_by": row.changed_by.get_username() if row.changed_by_id else None,
        "changed_at": row.changed_at if row.pk else None,
        "resume_at": row.resume_at,
        "resume_state": row.resume_state or None,
        "history": list(selectors.trading_state_history(limit=20)),
    }


class TradingStateApi(APIView):
    """GET the trading state with its audit trail; POST to move to ACTIVE/REDUCING/HALTED."""

    permission_classes = [CanTrade]
    throttle_classes = [WriteThrottle]

    class StateInputSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=TradingMode.choices)
        reason = serializers.CharField(max_length=255, required=False, allow_blank=True)

    @extend_schema(responses=TradingStateOutputSerializer)
    def get(self, request):
        return Response(TradingStateOutputSerializer(_state_payload()).data)

    @extend_schema(request=StateInputSerializer, responses=TradingStateOutputSerializer)
    def post(self, request):
        data = self.StateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.trading_state_set(
            state=data.validated_data["state"],
            reason=data.validated_data.get("reason") or f"via API by {request.user}",
            user=request.user,
            actor=request.user.get_username(),
        )
        return Response(TradingStateOutputSerializer(_state_payload()).data)


class _StateShortcutApi(APIView):
    permission_classes = [CanTrade]
    throttle_classes = [WriteThrottle]
    target_state = TradingMode.HALTED

    class ShortcutInputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=255, required=False, allow_blank=True)

    @extend_schema(request=ShortcutInputSerializer, responses=TradingStateOutputSerializer)
    def post(self, request):
        data = self.ShortcutInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.trading_state_set(
            state=self.target_state,
            reason=data.validated_data.get("reason") or f"via API by {request.user}",
            user=request.user,
            actor=request.user.get_username(),
        )
        return Response(TradingStateOutputSerializer(_state_payload()).data)


class TradingHaltApi(_StateShortcutApi):
    """Halt: no new entries; cancels and flatten still work."""

    target_state = TradingMode.HALTED


class TradingResumeApi(_StateShortcutApi):
    """Resume: back to ACTIVE."""

    target_state = TradingMode.ACTIVE


class SignalListOrPreviewApi(SignalListApi):
    """GET /signals: the journal (paginated, filterable). With `?preview=1`: what the worker
    would do now on the latest stored bar of each symbol (every setup's status and reasons,
    and for a setup that fires, the risk checks that would pass or block it). The preview
    lives in the risk app because it needs risk checks, and risk may import strategies."""

    class PreviewSerializer(serializers.Serializer):
        preview = serializers.BooleanField(required=False, default=False)
        symbols = serializers.CharField(required=False, help_text="comma-separated tickers")

        def validate_symbols(self, value: str) -> list[str]:
            out = []
            for part in filter(None, (p.strip() for p in value.split(","))):
                out.append(symbol_normalise(part))
            if not out:
                raise serializers.ValidationError("give at least one symbol")
            return out

    def get(self, request, *args, **kwargs):
        mode = self.PreviewSerializer(data=request.query_params)
        mode.is_valid(raise_exception=True)
        if not mode.validated_data["preview"]:
            return super().get(request, *args, **kwargs)
        return Response(_signals_preview(mode.validated_data.get("symbols")))


def _signals_preview(symbols: list[str] | None) -> dict:
    items = strategy_services.signals_preview(symbols=symbols)
    for item in items:
        if item.get("status") == "fired" and item.get("entry_price") is not None:
            item["risk"] = services.risk_preview(
                symbol=item.get("execution_symbol") or item["symbol"],
                price=item["entry_price"],
                stop_price=item.get("stop_price"),
            )
    return {"mode": "preview", "count": len(items), "results": items}


class SignalPreviewApi(APIView):
    """What the worker would do now on the latest stored bar of each symbol: every setup's
    status and reasons, and for a setup that fires, the risk checks that would pass or block
    it. Same as GET /signals?preview=1."""

    @extend_schema(
        parameters=[
            OpenApiParameter("symbols", str, description="comma-separated tickers"),
        ],
        responses=inline_serializer(
            "SignalPreview",
            {
                "mode": serializers.CharField(),
                "count": serializers.IntegerField(),
                "results": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    def get(self, request):
        mode = SignalListOrPreviewApi.PreviewSerializer(data=request.query_params)
        mode.is_valid(raise_exception=True)
        return Response(_signals_preview(mode.validated_data.get("symbols")))
