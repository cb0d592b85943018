"""The setup editor's backtest button: a Celery backtest of one setup over stored bars, stored
as a BacktestRun whose page is the report.

POST /api/v1/setups/<NAME>/backtest {symbol, start, end, mode} (permission
strategies.change_usersetup) -> {task_id, status_url}; GET /api/v1/setups/backtests/<task_id>
-> {state, run_id, report_url} once the run is stored.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from celery import shared_task
from django.urls import re_path, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

EDIT_PERMISSION = "strategies.change_usersetup"


def _run_name(setup: str, task_id: str) -> str:
    return f"setup {setup} [{task_id}]"


@shared_task(name="analytics.setup_backtest", bind=True)
def setup_backtest_task(self, name: str, symbol: str, start: str | None, end: str | None,
                        mode: str = "fast") -> int:  # fmt: skip
    """Backtest setup `name` alone on the stored bars of `symbol`; returns the BacktestRun id."""
    from analytics.backtest.config import BacktestConfig
    from analytics.backtest.runner import DataSpec, backtest_persist, backtest_run

    config = BacktestConfig.from_settings()
    config = replace(config, strategy=replace(config.strategy, enabled_setups=(name,)))
    spec = DataSpec(
        "db",
        (symbol,),
        date.fromisoformat(start) if start else None,
        date.fromisoformat(end) if end else None,
    )
    result = backtest_run(spec=spec, config=config, mode=mode)
    return backtest_persist(result, name=_run_name(name, self.request.id or "")).pk


class BacktestInput(serializers.Serializer):
    symbol = serializers.CharField(max_length=16, default="SPY")
    start = serializers.DateField(required=False, allow_null=True, default=None)
    end = serializers.DateField(required=False, allow_null=True, default=None)
    mode = serializers.ChoiceField(choices=("fast", "event"), default="fast")


def _report_url(run_id: int) -> str:
    return reverse("admin:analytics_backtestrun_change", args=[run_id])


class SetupBacktestApi(APIView):
    serializer_class = BacktestInput

    def post(self, request, name: str):
        from strategies.setups.registry import setup_get

        if not request.user.has_perm(EDIT_PERMISSION):
            raise PermissionDenied(f"You need the permission {EDIT_PERMISSION}.")
        if setup_get(name) is None:
            return Response({"detail": f"unknown setup {name}"}, status=404)
        data = BacktestInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            result = setup_backtest_task.delay(
                name, v["symbol"].upper(), v["start"] and v["start"].isoformat(),
                v["end"] and v["end"].isoformat(), v["mode"],
            )  # fmt: skip
        except (ValueError, OSError) as exc:  # eager mode: e.g. no stored bars for the symbol
            return Response({"detail": str(exc)}, status=400)
        body = {"task_id": result.id, "status_url": f"/api/v1/setups/backtests/{result.id}"}
        if result.ready() and result.successful():  # eager mode: already stored
            body.update(run_id=result.result, report_url=_report_url(result.result))
        return Response(body, status=status.HTTP_202_ACCEPTED)


class SetupBacktestStatusApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, task_id: str):
        from analytics.models import BacktestRun

        run = BacktestRun.objects.filter(name__endswith=f"[{task_id}]").first()
        if run is None:
            return Response({"task_id": task_id, "state": "pending"})
        return Response({"task_id": task_id, "state": "done", "run_id": run.pk,
                         "report_url": _report_url(run.pk), "stats": run.stats})  # fmt: skip


urlpatterns = [
    re_path(
        r"^setups/(?P<name>[A-Z][A-Z0-9_]{0,31})/backtest$",
        SetupBacktestApi.as_view(),
        name="setup-backtest",
    ),  # fmt: skip
    re_path(
        r"^setups/backtests/(?P<task_id>[0-9a-f-]{1,64})$",
        SetupBacktestStatusApi.as_view(),
        name="setup-backtest-status",
    ),  # fmt: skip
]
