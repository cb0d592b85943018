"""Analytics endpoints: the signal summary, stored backtest runs and sweeps (read-only).

Mounted under /api/v1/analytics/ by autotrader_site/api_urls.py. Reads need a logged-in user
(the project default permission).
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.selectors import backtest_run_list, signals_summarize, sweep_run_list


class SignalSummaryApi(APIView):
    """Counts of journaled signals by setup × outcome and block reasons over [start, end)."""

    class FilterSerializer(serializers.Serializer):
        start = serializers.DateTimeField(required=False)
        end = serializers.DateTimeField(required=False)

        def validate(self, attrs):
            if attrs.get("start") and attrs.get("end") and attrs["start"] >= attrs["end"]:
                raise serializers.ValidationError({"end": "must be after start"})
            return attrs

    class OutputSerializer(serializers.Serializer):
        start = serializers.CharField(allow_null=True)
        end = serializers.CharField(allow_null=True)
        total = serializers.IntegerField()
        by_outcome = serializers.DictField(child=serializers.IntegerField())
        by_setup = serializers.DictField()
        block_reasons = serializers.DictField(child=serializers.IntegerField())
        block_reasons_by_setup = serializers.DictField()

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer)
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        summary = signals_summarize(**filters.validated_data)
        return Response(self.OutputSerializer(summary).data)


class BacktestRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    params = serializers.JSONField()
    stats = serializers.JSONField()
    sweep_id = serializers.IntegerField(allow_null=True)
    trade_count = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_trade_count(self, obj) -> int:
        return len(obj.trades or [])


class BacktestRunDetailOutputSerializer(BacktestRunOutputSerializer):
    trades = serializers.JSONField()


class BacktestRunListApi(generics.ListAPIView):
    """Stored backtests (from `manage.py backtest --persist` and sweeps), newest first."""

    serializer_class = BacktestRunOutputSerializer

    def get_queryset(self):
        qs = backtest_run_list()
        sweep = self.request.query_params.get("sweep")
        if sweep and sweep.isdigit():
            qs = qs.filter(sweep_id=int(sweep))
        return qs


class BacktestRunDetailApi(generics.RetrieveAPIView):
    serializer_class = BacktestRunDetailOutputSerializer

    def get_queryset(self):
        return backtest_run_list()


class SweepRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    grid = serializers.JSONField()
    status = serializers.CharField()
    summary = serializers.JSONField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class SweepRunListApi(generics.ListAPIView):
    """Parameter sweeps with their summary table, newest first."""

    serializer_class = SweepRunOutputSerializer

    def get_queryset(self):
        return sweep_run_list()


class SweepRunDetailApi(generics.RetrieveAPIView):
    serializer_class = SweepRunOutputSerializer

    def get_queryset(self):
        return sweep_run_list()


urlpatterns = [
    path("analytics/signals", SignalSummaryApi.as_view(), name="analytics-signals"),
    path("analytics/backtests", BacktestRunListApi.as_view(), name="analytics-backtest-list"),
    path(
        "analytics/backtests/<int:pk>",
        BacktestRunDetailApi.as_view(),
        name="analytics-backtest-detail",
    ),
    path("analytics/sweeps", SweepRunListApi.as_view(), name="analytics-sweep-list"),
    path("analytics/sweeps/<int:pk>", SweepRunDetailApi.as_view(), name="analytics-sweep-detail"),
]

from analytics.evidence_api import urlpatterns as evidence_urlpatterns  # noqa: E402

urlpatterns += evidence_urlpatterns
