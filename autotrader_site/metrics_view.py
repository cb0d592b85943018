"""`/metrics` for Prometheus.

With PROMETHEUS_MULTIPROC_DIR set, every process (uvicorn workers, Celery workers, the streamer)
writes its samples to files in that directory and this view aggregates them, so counts made in
a Celery worker reach Prometheus through the web process. Every metric of
autotrader_site.metrics is always listed (HELP/TYPE even before its first sample), so dashboards
and alert rules never see a name vanish. Open by default; METRICS_REQUIRE_AUTH=1 asks for a
logged-in user or an API token.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

import autotrader_site.metrics as app_metrics

_TYPE_OF = {"counter": "counter", "gauge": "gauge", "histogram": "histogram"}


def _declared_metrics() -> list:
    """The metric objects defined in autotrader_site.metrics."""
    from prometheus_client.metrics import MetricWrapperBase

    return [m for m in vars(app_metrics).values() if isinstance(m, MetricWrapperBase)]


class _AlwaysListed:
    """Yields an empty family for each declared metric missing from the other collectors."""

    def __init__(self, present: set[str]) -> None:
        self.present = present

    def collect(self):
        for metric in _declared_metrics():
            name = metric._name
            if name in self.present:
                continue
            yield Metric(name, metric._documentation, _TYPE_OF.get(metric._type, "untyped"))


def metrics_payload() -> bytes:
    """The exposition text of this process, or of every process in multiprocess mode."""
    multiproc_dir = settings.PROMETHEUS_MULTIPROC_DIR
    if multiproc_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry = REGISTRY
    present = {family.name for family in registry.collect()}
    extra = CollectorRegistry()
    extra.register(_AlwaysListed(present))
    return generate_latest(registry) + generate_latest(extra)


def _authenticated(request) -> bool:
    drf_request = Request(request, authenticators=[SessionAuthentication(), TokenAuthentication()])
    try:
        user = drf_request.user
    except AuthenticationFailed:
        return False
    return bool(user and user.is_authenticated)


def metrics_view(request):
    if settings.METRICS_REQUIRE_AUTH and not _authenticated(request):
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = "Token"
        return response
    return HttpResponse(metrics_payload(), content_type=CONTENT_TYPE_LATEST)
