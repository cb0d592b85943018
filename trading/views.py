"""Order, fill, position and trade endpoints. Views validate, call one service or selector,
and serialise; the rules live in trading.services / trading.selectors."""

from __future__ import annotations

from rest_framework import generics

from trading.filters import FillFilter, OrderFilter, TradeFilter
from trading.models import Fill, Order, Trade
from trading.serializers import (
    FillOutputSerializer,
    OrderDetailOutputSerializer,
    OrderOutputSerializer,
    TradeOutputSerializer,
)


class OrderListApi(generics.ListAPIView):
    """Orders, newest first; filter by symbol, status, role, side, tag, since/until."""

    serializer_class = OrderOutputSerializer
    filterset_class = OrderFilter

    def get_queryset(self):
        return Order.objects.order_by("-created_at", "-id")


class OrderDetailApi(generics.RetrieveAPIView):
    serializer_class = OrderDetailOutputSerializer

    def get_queryset(self):
        return Order.objects.prefetch_related("events", "fills")


class FillListApi(generics.ListAPIView):
    serializer_class = FillOutputSerializer
    filterset_class = FillFilter

    def get_queryset(self):
        return Fill.objects.order_by("-ts", "-id")


class TradeListApi(generics.ListAPIView):
    """Managed trades with their exit plan and state."""

    serializer_class = TradeOutputSerializer
    filterset_class = TradeFilter

    def get_queryset(self):
        return Trade.objects.order_by("-created_at", "-id")


class TradeDetailApi(generics.RetrieveAPIView):
    serializer_class = TradeOutputSerializer
    queryset = Trade.objects.all()
