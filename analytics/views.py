"""Diagnostics and per-setup statistics.

Health is open to anyone (load balancers, probes): it reveals ages and up/down facts, never
configuration values or secrets. Providers and stats need a logged-in user."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.health import health_checked
from autotrader_site.clock import clock
from marketdata.serializers import SymbolField

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


def _check_bar_queues(broker: str) -> dict:
    """Backlog of each bar shard queue (BAR_CLOSE_SHARDS > 1): a shard no worker consumes
    grows by one task (the streamer's batch of its symbols) every minute, so its bars would
    never be handled."""
    import redis

    from trading.bar_routing import bar_queues

    try:
        client = redis.Redis.from_url(broker, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            lengths = {q: int(client.llen(q)) for q in bar_queues(settings.BAR_CLOSE_SHARDS)}
        finally:
            client.close()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    backlog = [q for q, n in lengths.items() if n > settings.HEALTH_BAR_BACKLOG_MAX]
    return {"lengths": lengths, "backlogged": backlog, "stale": bool(backlog)}


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
    if settings.BAR_CLOSE_SHARDS > 1 and broker.startswith(("redis://", "rediss://")):
        checks["bar_queues"] = _check_bar_queues(broker)
    now = clock.now() if checks["database"]["ok"] else None
    if now is None:
        now = datetime.now(UTC)
    if checks["database"]["ok"]:
        checks["last_bar"] = _check_last_bar(now)
        # Liveness is a wall-clock fact (heartbeats are wall time), even during a replay.
        checks["worker"] = _check_worker(datetime.now(UTC))
        checks["reconciliation"] = _check_reconciliation()
        # probes poll this endpoint: the wiring checks stalls and failed reconciliations
        health_checked.send(sender=HealthApi, now=now)
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


# --- providers ------------------------------------------------------------------------------
def _tradier_live_check() -> dict:
    """One quick call to Tradier's market clock (no retries); never raises."""
    from marketdata.clients.tradier_http import TradierHTTP
    from marketdata.clients.tradier_market import TradierMarketData

    http = TradierHTTP.from_settings(max_retries=0, timeout=min(settings.TRADIER_TIMEOUT_SEC, 3))
    started = time.perf_counter()
    try:
        clock_now = TradierMarketData(http=http).clock()
    except Exception as exc:
        logger.warning("providers: tradier check failed: %s", type(exc).__name__)
        return {"reachable": False, "error": type(exc).__name__}
    finally:
        http.close()
    return {
        "reachable": True,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        "market_state": clock_now.get("state"),
        "next_state": clock_now.get("next_state"),
        "next_change": clock_now.get("next_change"),
    }


def providers_report(*, check: bool) -> dict:
    """What each data/broker provider is configured to do, with the facts that bite
    (sandbox data is delayed, sandbox has no streaming). No secret values."""
    sandbox = settings.TRADIER_ENV == "sandbox"
    tradier = {
        "env": settings.TRADIER_ENV,
        "base_url": settings.TRADIER_BASE_URL,
        "configured": bool(settings.TRADIER_ACCESS_TOKEN),
        "orders_routed": not settings.DRY_RUN,
        "data_delay_minutes": 15 if sandbox else 0,
        "streaming_available": not sandbox,
        "notes": (
            [
                "Sandbox quotes and time-and-sales are delayed ~15 minutes.",
                "Sandbox has no streaming API: live bars come from Polygon or the replay feed.",
                "Tradier has no native trailing stop: trailing is emulated by the exit manager.",
            ]
            if sandbox
            else ["Tradier has no native trailing stop: trailing is emulated by the exit manager."]
        ),
    }
    polygon = {
        "configured": bool(settings.POLYGON_API_KEY),
        "rest_url": settings.POLYGON_REST_URL,
        "ws_url": settings.POLYGON_WS_URL,
        "ws_key_configured": bool(settings.POLYGON_WS_KEY),
        "ws_symbols": settings.POLYGON_WS_SYMBOLS,
        "use_polygon_equity": settings.USE_POLYGON_EQUITY,
        "flatfiles_configured": bool(
            settings.POLYGON_FLATFILES_ACCESS_KEY and settings.POLYGON_FLATFILES_SECRET_KEY
        ),
        "notes": [
            "Options liquidity and IV come from the options snapshot endpoints.",
            "Index clusters (I:SPX, I:NDX) carry no volume; the execution proxy's volume is used.",
        ],
    }
    if check:
        tradier["check"] = _tradier_live_check() if tradier["configured"] else {"reachable": None}
    return {
        "dry_run": settings.DRY_RUN,
        "broker": "paper" if settings.DRY_RUN else "tradier",
        "market_data": "polygon" if settings.USE_POLYGON_EQUITY else "tradier/replay",
        "tradier": tradier,
        "polygon": polygon,
    }


class ProvidersApi(APIView):
    """Provider configuration facts; `?check=1` also calls Tradier's market clock once."""

    class ProvidersFilterSerializer(serializers.Serializer):
        check = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        parameters=[ProvidersFilterSerializer],
        responses=inline_serializer(
            "Providers",
            {
                "dry_run": serializers.BooleanField(),
                "broker": serializers.CharField(),
                "market_data": serializers.CharField(),
                "tradier": serializers.DictField(),
                "polygon": serializers.DictField(),
            },
        ),
    )
    def get(self, request):
        params = self.ProvidersFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(providers_report(check=params.validated_data["check"]))


# --- per-setup statistics -------------------------------------------------------------------
def setup_stats(*, since=None, until=None, symbol: str | None = None) -> list[dict]:
    """Per setup: signals by outcome (journal) and closed-trade statistics (ledger) of the
    account; and `versions`, the same per (setup version, book), so a version traded on the
    paper book (`trading.paper_book`) is compared with the approved one before going live."""
    from django.db.models import Count

    from analytics.statistics import trade_stats
    from strategies.models import Book, Signal
    from trading.models import Trade, TradeStatus

    signals = Signal.objects.all()
    trades = Trade.objects.filter(status=TradeStatus.CLOSED)
    if since is not None:
        signals = signals.filter(bar_ts__gte=since)
        trades = trades.filter(created_at__gte=since)
    if until is not None:
        signals = signals.filter(bar_ts__lte=until)
        trades = trades.filter(created_at__lte=until)
    if symbol:
        signals = signals.filter(symbol=symbol)
        trades = trades.filter(symbol=symbol)
    out: dict[str, dict] = {}
    versions: dict[tuple, dict] = {}

    def _entry(setup: str) -> dict:
        return out.setdefault(setup, {"setup": setup, "signals": 0, "outcomes": {}})

    def _version(setup: str, version: str, book: str) -> dict:
        return versions.setdefault(
            (setup, version, book),
            {"version": version, "book": book, "signals": 0, "outcomes": {}, "pnls": []},
        )

    rows = signals.values("setup", "setup_version", "book", "outcome").annotate(n=Count("id"))
    for row in rows.order_by():
        v = _version(row["setup"], row["setup_version"], row["book"])
        v["signals"] += row["n"]
        v["outcomes"][row["outcome"]] = v["outcomes"].get(row["outcome"], 0) + row["n"]
        entry = _entry(row["setup"])
        if row["book"] == Book.ACCOUNT:
            entry["signals"] += row["n"]
            entry["outcomes"][row["outcome"]] = entry["outcomes"].get(row["outcome"], 0) + row["n"]
    pnls: dict[str, list[float]] = {}
    closed = trades.order_by("closed_at", "id").values_list(
        "setup", "signal__setup_version", "book", "realized_pnl"
    )
    for setup, version, book, pnl in closed:
        setup = setup or "MANUAL"
        _version(setup, version or "", book)["pnls"].append(float(pnl))
        if book == Book.ACCOUNT:
            pnls.setdefault(setup, []).append(float(pnl))
        _entry(setup)
    for setup, entry in out.items():
        entry["trades"] = trade_stats(pnls.get(setup, [])).as_dict()
        entry["versions"] = []
    for (setup, _, _), v in sorted(versions.items()):
        v["trades"] = trade_stats(v.pop("pnls")).as_dict()
        out[setup]["versions"].append(v)
    return sorted(out.values(), key=lambda e: e["setup"])


class SetupStatsApi(APIView):
    """Per-setup statistics of the account: signals by outcome, closed trades' win rate,
    expectancy, P&L; and the same per setup version and book (paper book included)."""

    class SetupStatsFilterSerializer(serializers.Serializer):
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        symbol = SymbolField(required=False)

        def validate(self, attrs):
            if attrs.get("since") and attrs.get("until") and attrs["since"] > attrs["until"]:
                raise serializers.ValidationError({"until": "must not be before since"})
            return attrs

    class SetupStatsOutputSerializer(serializers.Serializer):
        setup = serializers.CharField()
        signals = serializers.IntegerField()
        outcomes = serializers.DictField(child=serializers.IntegerField())
        trades = serializers.DictField()
        versions = serializers.ListField(
            child=serializers.DictField(),
            help_text="[{version, book (account/paper), signals, outcomes, trades}]",
        )

    @extend_schema(
        parameters=[SetupStatsFilterSerializer], responses=SetupStatsOutputSerializer(many=True)
    )
    def get(self, request):
        params = self.SetupStatsFilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        rows = setup_stats(**params.validated_data)
        return Response(self.SetupStatsOutputSerializer(rows, many=True).data)
