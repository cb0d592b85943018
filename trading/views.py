"""Order, fill, position and trade endpoints. Views validate, call one service or selector,
and serialise; the rules live in trading.services / trading.selectors."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from autotrader_site.pagination import KeysetPagination
from autotrader_site.permissions import CanTrade, WriteThrottle, is_superuser
from marketdata.serializers import PositivePriceField, SymbolField
from trading import selectors, services
from trading.brokers.order_shapes import OrderShapeError
from trading.core.errors import TradingError
from trading.filters import FillFilter, OrderFilter, TradeFilter
from trading.models import AccountSnapshot, AuditEvent, Fill, Order, Trade
from trading.serializers import (
    AccountSnapshotOutputSerializer,
    FillOutputSerializer,
    OrderDetailOutputSerializer,
    OrderOutputSerializer,
    TradeOutputSerializer,
)

logger = logging.getLogger(__name__)


class Conflict(APIException):
    status_code = 409
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class OrderListApi(generics.ListAPIView):
    """Orders, newest first; filter by symbol, status, role, side, tag, since/until."""

    serializer_class = OrderOutputSerializer
    filterset_class = OrderFilter
    pagination_class = KeysetPagination

    def get_queryset(self):
        return Order.objects.order_by("-created_at", "-id")


class FillListApi(generics.ListAPIView):
    serializer_class = FillOutputSerializer
    filterset_class = FillFilter
    pagination_class = KeysetPagination

    def get_queryset(self):
        return Fill.objects.order_by("-ts", "-id")


class TradeListApi(generics.ListAPIView):
    """Managed trades with their exit plan and state."""

    serializer_class = TradeOutputSerializer
    filterset_class = TradeFilter
    pagination_class = KeysetPagination

    def get_queryset(self):
        return Trade.objects.order_by("-created_at", "-id")


class TradeDetailApi(generics.RetrieveAPIView):
    serializer_class = TradeOutputSerializer
    queryset = Trade.objects.all()


# --- lookups and errors ---------------------------------------------------------------------
def order_lookup(order_id: str) -> Order:
    """An order by our id, else by the broker's order id, else by its tag (the spec's
    ORDER_ID was the broker's)."""
    qs = Order.objects.all()
    if order_id.isascii() and order_id.isdigit() and len(order_id) <= 18:
        order = qs.filter(pk=int(order_id)).first()
        if order is not None:
            return order
    order = qs.filter(broker_order_id=order_id).order_by("-id").first()
    if order is None:
        order = qs.filter(tag=order_id).first()
    if order is None:
        raise NotFound(f"no order {order_id!r}")
    return order


class BrokerUnavailableError(APIException):
    status_code = 502
    default_detail = "The broker did not answer; try again."
    default_code = "broker_unavailable"


def _broker_call(fn, **kwargs):
    """Run a service that talks to the broker; broker failures become 502 (logged)."""
    from trading.brokers.base import BrokerError

    try:
        return fn(**kwargs)
    except OrderShapeError:
        raise  # our own check refused it before sending: the caller answers 400
    except BrokerError as exc:
        logger.warning("broker call %s failed: %s", fn.__name__, type(exc).__name__)
        raise BrokerUnavailableError(f"broker error: {type(exc).__name__}") from exc


class _WriteApi(APIView):
    permission_classes = [CanTrade]
    throttle_classes = [WriteThrottle]


# --- order actions --------------------------------------------------------------------------
class OrderByBrokerIdApi(APIView):
    """One order by our id, the broker's order id or the tag."""

    @extend_schema(responses=OrderDetailOutputSerializer)
    def get(self, request, order_id: str):
        order = order_lookup(order_id)
        return Response(OrderDetailOutputSerializer(order).data)


class OrderCancelApi(_WriteApi):
    """Cancel one working order (at the broker, then in the ledger). 409 when it is done."""

    @extend_schema(request=None, responses={200: OrderOutputSerializer, 409: None})
    def post(self, request, order_id: str):
        order = order_lookup(order_id)
        if not order.is_working:
            raise Conflict(f"order {order.pk} is {order.status}; nothing to cancel")
        order = _broker_call(services.order_cancel, order=order, cause=f"cancel by {request.user}")
        order.refresh_from_db()
        return Response(OrderOutputSerializer(order).data)


class OrdersCancelAllApi(_WriteApi):
    """Cancel every working order (of `symbol`); protective stops of open trades are kept
    unless include_protective=1 (flatten is the way out of a position)."""

    class CancelAllFilterSerializer(serializers.Serializer):
        symbol = SymbolField(required=False)
        include_protective = serializers.BooleanField(required=False, default=False)

    class CancelAllOutputSerializer(serializers.Serializer):
        cancelled = serializers.ListField(child=serializers.IntegerField())
        kept_protective = serializers.ListField(child=serializers.IntegerField())

    @extend_schema(
        parameters=[CancelAllFilterSerializer], request=None, responses=CancelAllOutputSerializer
    )
    def post(self, request):
        params = self.CancelAllFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        result = _broker_call(
            services.orders_cancel_all,
            symbol=params.validated_data.get("symbol"),
            include_protective=params.validated_data["include_protective"],
            user=request.user,
        )
        return Response(self.CancelAllOutputSerializer(result).data)


class OrdersCancelStaleApi(_WriteApi):
    """Cancel non-protective working orders older than `minutes` (default STALE_ORDER_MINUTES)."""

    class CancelStaleFilterSerializer(serializers.Serializer):
        minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, required=False)

    class CancelStaleOutputSerializer(serializers.Serializer):
        cancelled = serializers.ListField(child=serializers.IntegerField())
        minutes = serializers.IntegerField()

    @extend_schema(
        parameters=[CancelStaleFilterSerializer],
        request=None,
        responses=CancelStaleOutputSerializer,
    )
    def post(self, request):
        params = self.CancelStaleFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        minutes = params.validated_data.get("minutes", settings.STALE_ORDER_MINUTES)
        result = _broker_call(services.orders_cancel_stale, minutes=minutes)
        AuditEvent.objects.create(
            action="orders_cancel_stale",
            user=request.user,
            details={"minutes": minutes, "cancelled": result["cancelled"]},
        )
        return Response(self.CancelStaleOutputSerializer(result).data)


# --- positions and account ------------------------------------------------------------------
class PositionStopSerializer(serializers.Serializer):
    stop = serializers.CharField()
    qty = serializers.IntegerField()


class PositionsOutputSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    qty = serializers.IntegerField()
    avg_price = serializers.CharField()
    last_price = serializers.CharField(allow_null=True)
    unrealized_pnl = serializers.CharField()
    realized_pnl = serializers.CharField()
    stops = PositionStopSerializer(many=True)


class PositionListApi(APIView):
    """Open positions of the ledger with unrealised P&L and their protective stops."""

    @extend_schema(responses=PositionsOutputSerializer(many=True))
    def get(self, request):
        return Response(PositionsOutputSerializer(selectors.positions_list(), many=True).data)


class PositionsFlattenApi(_WriteApi):
    """Close every position (or `symbol`'s) at market and cancel working entries. Audited."""

    class FlattenFilterSerializer(serializers.Serializer):
        symbol = SymbolField(required=False)
        reason = serializers.CharField(required=False, max_length=200)

    class FlattenOutputSerializer(serializers.Serializer):
        trades = serializers.ListField(child=serializers.IntegerField())
        orders = serializers.ListField(child=serializers.IntegerField())

    @extend_schema(
        parameters=[FlattenFilterSerializer], request=None, responses=FlattenOutputSerializer
    )
    def post(self, request):
        params = self.FlattenFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        result = _broker_call(
            services.positions_flatten,
            symbol=params.validated_data.get("symbol"),
            reason=params.validated_data.get("reason") or f"flatten by {request.user}",
            user=request.user,
        )
        return Response(self.FlattenOutputSerializer(result).data)


class BalancesOutputSerializer(serializers.Serializer):
    broker = serializers.CharField()
    cash = serializers.CharField()
    equity = serializers.CharField()
    buying_power = serializers.CharField(allow_null=True)
    open_pnl = serializers.CharField()
    day_pnl = serializers.CharField(allow_null=True)


class AccountBalancesApi(APIView):
    """The broker's balances now (the paper broker's when DRY_RUN=1)."""

    @extend_schema(responses=BalancesOutputSerializer)
    def get(self, request):
        return Response(BalancesOutputSerializer(_broker_call(selectors.account_balances)).data)


class AccountSnapshotListApi(generics.ListAPIView):
    """Stored account snapshots (equity curve), newest first."""

    serializer_class = AccountSnapshotOutputSerializer
    pagination_class = KeysetPagination

    def get_queryset(self):
        return AccountSnapshot.objects.order_by("-ts")


# --- dry run and brackets -------------------------------------------------------------------
ORDER_SIDES = ("buy", "sell", "sell_short", "buy_to_cover")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")


class PercentField(serializers.DecimalField):
    """A fraction strictly between 0 and `upper` (0.01 = 1%)."""

    def __init__(self, *, upper: str, **kwargs):
        self.upper = Decimal(upper)
        kwargs.setdefault("max_digits", 8)
        kwargs.setdefault("decimal_places", 6)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not (0 < value < self.upper):
            raise serializers.ValidationError(
                f"must be a fraction between 0 and {self.upper} (0.01 = 1%)"
            )
        return value


def _order_prices_validate(attrs: dict) -> dict:
    order_type = attrs.get("type", "market")
    errors = {}
    if order_type in ("limit", "stop_limit") and attrs.get("price") is None:
        errors["price"] = [f"required for a {order_type} order"]
    if order_type in ("stop", "stop_limit") and attrs.get("stop") is None:
        errors["stop"] = [f"required for a {order_type} order"]
    if errors:
        raise serializers.ValidationError(errors)
    return attrs


class TradeDryRunApi(APIView):
    """What would be sent to Tradier for this order, validated like Tradier, and what the risk
    rules say for a buy. Nothing is sent or stored (any logged-in user)."""

    throttle_classes = [WriteThrottle]

    class DryRunInputSerializer(serializers.Serializer):
        symbol = SymbolField()
        side = serializers.ChoiceField(choices=ORDER_SIDES)
        qty = serializers.IntegerField(min_value=1, max_value=1_000_000)
        type = serializers.ChoiceField(choices=ORDER_TYPES, default="market")
        price = PositivePriceField(required=False)
        stop = PositivePriceField(required=False)

        def validate(self, attrs):
            return _order_prices_validate(attrs)

    @extend_schema(
        request=DryRunInputSerializer,
        responses=inline_serializer(
            "DryRun",
            {
                "valid": serializers.BooleanField(),
                "error": serializers.CharField(),
                "request": serializers.DictField(),
                "dry_run": serializers.BooleanField(),
                "risk": serializers.DictField(required=False),
            },
        ),
    )
    def post(self, request):
        data = self.DryRunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = services.order_dryrun(
            symbol=v["symbol"],
            side=v["side"],
            qty=v["qty"],
            order_type=v["type"],
            price=v.get("price"),
            stop=v.get("stop"),
        )
        return Response(result)


def _input_error(exc: TradingError):
    """A typed input error of the trading services as a 400 on the field it names."""
    if exc.code == "BRACKET_LEVELS_MISSING":
        return serializers.ValidationError({"stop_pct": [exc.message], "tp_pct": [exc.message]})
    return serializers.ValidationError({exc.field or "non_field_errors": [exc.message]})


class BracketPreviewApi(APIView):
    """Stop, target, notional, risk/reward of a bracket and the risk checks it would meet.
    Percentages default to the symbol's effective STOP/TP values; `price` overrides the last
    stored price (useful when data providers are limited)."""

    class BracketPreviewFilterSerializer(serializers.Serializer):
        symbol = SymbolField()
        qty = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
        stop_pct = PercentField(upper="1", required=False)
        tp_pct = PercentField(upper="10", required=False)
        price = PositivePriceField(required=False)

    @extend_schema(
        parameters=[BracketPreviewFilterSerializer],
        responses=inline_serializer(
            "BracketPreview",
            {
                "symbol": serializers.CharField(),
                "price": serializers.CharField(),
                "qty": serializers.IntegerField(),
                "stop": serializers.CharField(),
                "target": serializers.CharField(),
                "notional": serializers.CharField(),
                "risk_usd": serializers.CharField(),
                "reward_usd": serializers.CharField(),
                "reward_risk": serializers.CharField(),
                "approved": serializers.BooleanField(),
                "checks": serializers.ListField(child=serializers.DictField()),
                "reasons": serializers.ListField(child=serializers.CharField()),
            },
        ),
    )
    def get(self, request):
        params = self.BracketPreviewFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            result = services.bracket_preview(**params.validated_data)
        except TradingError as exc:
            raise _input_error(exc) from exc
        return Response(result)


class BracketPlaceApi(_WriteApi):
    """Place an OTOCO bracket (entry, take-profit limit, protective stop). Risk rules apply;
    `force: true` bypasses them, needs a superuser and is audited. Respects DRY_RUN.
    A bracket the risk rules refuse answers 200 with `placed: false` and the reasons."""

    class BracketPlaceInputSerializer(serializers.Serializer):
        symbol = SymbolField()
        qty = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
        type = serializers.ChoiceField(choices=("market", "limit"), default="market")
        price = PositivePriceField(required=False)
        stop_pct = PercentField(upper="1", required=False)
        tp_pct = PercentField(upper="10", required=False)
        force = serializers.BooleanField(default=False)

        def validate(self, attrs):
            return _order_prices_validate(attrs)

    @extend_schema(
        request=BracketPlaceInputSerializer,
        responses={200: inline_serializer("BracketPlaced", {"placed": serializers.BooleanField()})},
    )
    def post(self, request):
        data = self.BracketPlaceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if v["force"] and not is_superuser(request.user):
            raise PermissionDenied("force=true (skipping the risk rules) needs a superuser")
        if v["force"]:
            logger.warning("bracket/place with force by %s: %s", request.user, v["symbol"])
        try:
            result = _broker_call(
                services.bracket_place,
                symbol=v["symbol"],
                qty=v.get("qty"),
                stop_pct=v.get("stop_pct"),
                tp_pct=v.get("tp_pct"),
                price=v.get("price"),
                order_type=v["type"],
                force=v["force"],
                user=request.user,
            )
        except services.ForceNotAllowed as exc:
            raise PermissionDenied(str(exc)) from exc
        except TradingError as exc:
            raise _input_error(exc) from exc
        except OrderShapeError as exc:  # Tradier would refuse this shape: nothing was written
            raise serializers.ValidationError(
                {exc.field or "non_field_errors": [exc.detail], "rule": exc.rule}
            ) from exc
        return Response(result)
