"""Stored bars, read-only."""

from __future__ import annotations

from rest_framework import generics

from autotrader_site.pagination import KeysetPagination
from marketdata.filters import BarFilter
from marketdata.models import Bar
from marketdata.serializers import BarOutputSerializer


class BarListApi(generics.ListAPIView):
    """1-minute bars, newest first; filter by symbol, source, since/until."""

    serializer_class = BarOutputSerializer
    filterset_class = BarFilter
    pagination_class = KeysetPagination

    def get_queryset(self):
        return Bar.objects.order_by("-ts", "-id")
