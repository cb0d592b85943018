"""Diagnostics: health of the moving parts. Open to anyone (load balancers, Prometheus probes);
it reveals ages and up/down facts, never configuration values or secrets."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from autotrader_site.clock import clock

logger = logging.getLogger(__name__)


def _age_sec(at: datetime | None, now: datetime) -> float | None:
    return None if at is None else round((now - at).total_seconds(), 3)


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"
        logger.warning("health: database check failed: %s", type(exc).__name__)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_redis(url: str) -> dict:
    import redis

    started = time.perf_counter()
    try:
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        logger.warning("health: redis check failed: %s", type(exc).__name__)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_last_bar(now: datetime) -> dict:
    from marketdata.selectors import last_bar_time

    try:
        at = last_bar_time()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    age = _age_sec(at, now)
    # Bars stop outside market hours: staleness is reported, it does not fail the probe.
    return {"ts": at, "age_sec": age, "stale": age is None or age > settings.STREAM_STALL_SEC}


def _check_worker(now: datetime) -> dict:
    from trading.models import WorkerHeartbeat

    try:
        beat = WorkerHeartbeat.objects.order_by("-at").first()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    if beat is None:
        return {"name": None, "at": None, "age_sec": None, "stale": True}
    age = _age_sec(beat.at, now)
    return {
        "name": beat.name,
        "at": beat.at,
        "age_sec": age,
        "stale": age > settings.HEALTH_HEARTBEAT_STALE_SEC,
    }


def _check_reconciliation() -> dict:
    try:
        from trading import selectors as trading_selectors

        last = trading_selectors.reconciliation_last()
    except (ImportError, AttributeError):
        return {"available": False}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    if last is None:
        return {"available": True, "last": None}
    if isinstance(last, dict):
        return {"available": True, "last": last}
    return {"available": True, "last": {"result": str(last)}}


def health_report() -> tuple[dict, bool]:
    """Every check; `healthy` is False when the database or a configured Redis is down."""
    checks: dict = {"database": _check_database()}
    healthy = checks["database"]["ok"]
    if settings.REDIS_URL:
        checks["redis"] = _check_redis(settings.REDIS_URL)
        healthy = healthy and checks["redis"]["ok"]
    else:
        checks["redis"] = {"ok": None, "detail": "not configured (in-process tasks)"}
    broker = settings.CELERY_BROKER_URL
    if broker.startswith(("redis://", "rediss://")) and broker != settings.REDIS_URL:
        checks["broker"] = _check_redis(broker)
        healthy = healthy and checks["broker"]["ok"]
    now = clock.now() if checks["database"]["ok"] else None
    if now is None:
        from datetime import UTC

        now = datetime.now(UTC)
    if checks["database"]["ok"]:
        checks["last_bar"] = _check_last_bar(now)
        checks["worker"] = _check_worker(now)
        checks["reconciliation"] = _check_reconciliation()
    degraded = any(
        isinstance(c, dict) and (c.get("stale") or c.get("ok") is False) for c in checks.values()
    )
    state = "down" if not healthy else ("degraded" if degraded else "ok")
    return {"status": state, "time": now, "dry_run": settings.DRY_RUN, "checks": checks}, healthy


class HealthApi(APIView):
    """200 when the database (and Redis, when configured) answer; 503 otherwise."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        auth=[],
        responses={
            200: inline_serializer(
                "Health",
                {
                    "status": serializers.ChoiceField(choices=["ok", "degraded", "down"]),
                    "time": serializers.DateTimeField(),
                    "dry_run": serializers.BooleanField(),
                    "checks": serializers.DictField(),
                },
            ),
            503: inline_serializer(
                "HealthDown",
                {"status": serializers.CharField(), "checks": serializers.DictField()},
            ),
        },
    )
    def get(self, request):
        report, healthy = health_report()
        code = status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE
        return Response(report, status=code)
