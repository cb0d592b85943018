"""Signal journal endpoints: the list (filterable, paginated) and one signal."""

from __future__ import annotations

from rest_framework import generics

from strategies.filters import SignalFilter
from strategies.models import Signal
from strategies.serializers import SignalOutputSerializer


class SignalListApi(generics.ListAPIView):
    """Signals, newest bar first; filter by symbol, setup, outcome, side, since/until."""

    serializer_class = SignalOutputSerializer
    filterset_class = SignalFilter

    def get_queryset(self):
        return Signal.objects.order_by("-bar_ts", "-id")


class SignalDetailApi(generics.RetrieveAPIView):
    serializer_class = SignalOutputSerializer
    queryset = Signal.objects.all()
