"""Evidence endpoints: walk-forward runs (list, detail, start) and the drift ledger (entries and
per-setup summary). Mounted under /api/v1/ with the other analytics endpoints; reads need a
logged-in user, starting a walk-forward needs staff (it occupies the workers)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.selectors import drift_entry_list, drift_summary, walkforward_run_list


class WalkForwardRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    plan = serializers.JSONField()
    folds = serializers.JSONField()
    candidates = serializers.JSONField()
    status = serializers.CharField()
    summary = serializers.JSONField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class WalkForwardRunListApi(generics.ListAPIView):
    """Walk-forward runs with their reports, newest first; POST starts one."""

    serializer_class = WalkForwardRunOutputSerializer

    class InputSerializer(serializers.Serializer):
        grid = serializers.ListField(child=serializers.CharField(), min_length=1,
                                     help_text="NAME=v1,v2,... per axis")  # fmt: skip
        data = serializers.CharField(default="db")
        symbols = serializers.ListField(child=serializers.CharField(), default=["SPY"])
        setups = serializers.ListField(child=serializers.CharField(), required=False)
        mode = serializers.ChoiceField(choices=["fast", "event"], default="fast")
        train = serializers.IntegerField(min_value=1, default=20)
        test = serializers.IntegerField(min_value=1, default=5)
        step = serializers.IntegerField(min_value=0, default=0)
        anchored = serializers.BooleanField(default=False)
        objective = serializers.ChoiceField(
            choices=["total_pnl", "expectancy", "sharpe"], default="total_pnl"
        )
        search = serializers.IntegerField(min_value=0, default=0)
        seed = serializers.IntegerField(default=0)

    def get_permissions(self):
        return [IsAdminUser()] if self.request.method == "POST" else [IsAuthenticated()]

    def get_queryset(self):
        return walkforward_run_list()

    @extend_schema(request=InputSerializer, responses={202: WalkForwardRunOutputSerializer})
    def post(self, request):
        from analytics.sweeps import GridError, grid_parse
        from analytics.walkforward import WalkForwardError, WalkForwardPlan, walkforward_start

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            grid = grid_parse(v["grid"])
            plan = WalkForwardPlan(
                grid=grid,
                base={"data": v["data"], "symbols": [s.upper() for s in v["symbols"]],
                      "setups": [s.upper() for s in v.get("setups") or []] or None,
                      "mode": v["mode"]},  # fmt: skip
                train=v["train"], test=v["test"], step=v["step"], anchored=v["anchored"],
                objective=v["objective"], search=v["search"], seed=v["seed"],
            )  # fmt: skip
            run = walkforward_start(plan)
        except (GridError, WalkForwardError, OSError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(WalkForwardRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class WalkForwardRunDetailApi(generics.RetrieveAPIView):
    serializer_class = WalkForwardRunOutputSerializer

    def get_queryset(self):
        return walkforward_run_list()


class DriftEntryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    trade_id = serializers.IntegerField(allow_null=True)
    symbol = serializers.CharField()
    execution_symbol = serializers.CharField()
    setup = serializers.CharField()
    signal_ts = serializers.DateTimeField()
    status = serializers.CharField()
    live_qty = serializers.IntegerField()
    sim_qty = serializers.IntegerField()
    live_entry_ts = serializers.DateTimeField(allow_null=True)
    sim_entry_ts = serializers.DateTimeField(allow_null=True)
    live_entry_price = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True)
    sim_entry_price = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True)
    live_exit_ts = serializers.DateTimeField(allow_null=True)
    sim_exit_ts = serializers.DateTimeField(allow_null=True)
    live_exit_price = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True)
    sim_exit_price = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True)
    entry_slippage_bps = serializers.FloatField(allow_null=True)
    exit_slippage_bps = serializers.FloatField(allow_null=True)
    entry_delay_sec = serializers.FloatField(allow_null=True)
    exit_delay_sec = serializers.FloatField(allow_null=True)
    live_pnl = serializers.DecimalField(max_digits=16, decimal_places=4, allow_null=True)
    sim_pnl = serializers.DecimalField(max_digits=16, decimal_places=4, allow_null=True)
    live_exit_reason = serializers.CharField()
    sim_exit_reason = serializers.CharField()
    legs = serializers.JSONField()
    modelled_cost_bps = serializers.FloatField(allow_null=True)


class DriftEntryListApi(generics.ListAPIView):
    """The drift ledger, newest signal first; ?setup= and ?status= filter."""

    serializer_class = DriftEntryOutputSerializer

    def get_queryset(self):
        q = self.request.query_params
        return drift_entry_list(setup=q.get("setup") or None, status=q.get("status") or None)


class DriftSummaryApi(APIView):
    """Drift per setup over signals in [start, end): the dashboard's drift panel reads this."""

    class FilterSerializer(serializers.Serializer):
        start = serializers.DateTimeField(required=False)
        end = serializers.DateTimeField(required=False)

    @extend_schema(parameters=[FilterSerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return Response(drift_summary(**filters.validated_data))


urlpatterns = [
    path("analytics/walkforwards", WalkForwardRunListApi.as_view(),
         name="analytics-walkforward-list"),
    path("analytics/walkforwards/<int:pk>", WalkForwardRunDetailApi.as_view(),
         name="analytics-walkforward-detail"),
    path("analytics/drift", DriftEntryListApi.as_view(), name="analytics-drift-list"),
    path("analytics/drift/summary", DriftSummaryApi.as_view(), name="analytics-drift-summary"),
]  # fmt: skip
