"""Signal journal endpoints: the list (filterable, paginated) and one signal."""

from __future__ import annotations

from rest_framework import generics

from autotrader_site.pagination import EstimatedCountPagination
from strategies.filters import SignalFilter
from strategies.models import Signal
from strategies.serializers import SIGNAL_FIELDS, SignalOutputSerializer, signal_rows


class SignalListApi(generics.ListAPIView):
    """Signals, newest bar first; filter by symbol, setup, outcome, side, since/until."""

    serializer_class = SignalOutputSerializer
    filterset_class = SignalFilter
    pagination_class = EstimatedCountPagination

    def get_queryset(self):
        return Signal.objects.order_by("-bar_ts", "-id")

    def list(self, request, *args, **kwargs):
        # Lean path: rows straight from .values(), formatted like SignalOutputSerializer.
        queryset = self.filter_queryset(self.get_queryset()).values(*SIGNAL_FIELDS)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(signal_rows(page))


class SignalDetailApi(generics.RetrieveAPIView):
    serializer_class = SignalOutputSerializer
    queryset = Signal.objects.all()
