"""Signal journal endpoints: the list (filterable, paginated) and one signal."""

from __future__ import annotations

import orjson
from django.http import HttpResponse
from rest_framework import generics

from autotrader_site.pagination import KeysetPagination
from strategies.filters import SignalFilter
from strategies.models import Signal
from strategies.serializers import (
    SIGNAL_FIELDS,
    SignalOutputSerializer,
    signal_rows,
    signal_rows_raw,
    signal_values_raw,
)


class SignalListApi(generics.ListAPIView):
    """Signals, newest bar first; filter by symbol, setup, outcome, side, since/until."""

    serializer_class = SignalOutputSerializer
    filterset_class = SignalFilter
    pagination_class = KeysetPagination

    def get_queryset(self):
        return Signal.objects.order_by("-bar_ts", "-id")

    def list(self, request, *args, **kwargs):
        # Lean path (the API's hottest read): rows straight from .values(), formatted like
        # SignalOutputSerializer; for JSON clients the JSON columns pass through as text.
        queryset = self.filter_queryset(self.get_queryset())
        if request.accepted_renderer.format != "json":
            page = self.paginate_queryset(queryset.values(*SIGNAL_FIELDS))
            return self.get_paginated_response(signal_rows(page))
        page = self.paginate_queryset(signal_values_raw(queryset))
        payload = self.paginator.page_envelope(signal_rows_raw(page))
        return HttpResponse(orjson.dumps(payload), content_type="application/json")


class SignalDetailApi(generics.RetrieveAPIView):
    serializer_class = SignalOutputSerializer
    queryset = Signal.objects.all()
