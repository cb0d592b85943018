"""The lean signal list renders exactly like the DRF serializer; counts stay right on big
tables (estimate beyond the cap, flagged) and `next` never lies."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.api.conftest import T0, make_signal

pytestmark = pytest.mark.django_db


def test_lean_signal_rows_equal_the_serializer(reader):
    from strategies.models import Signal
    from strategies.serializers import SignalOutputSerializer

    make_signal(entry_price=Decimal("500.1"), stop_price=None, score=0.25)
    make_signal(bar_ts=T0 + timedelta(minutes=1), entry_price=Decimal("7"), qty=None)
    body = reader.get("/api/v1/signals").json()
    expected = SignalOutputSerializer(Signal.objects.order_by("-bar_ts", "-id"), many=True).data
    assert body["results"] == [dict(row) for row in expected]
    assert body["count"] == 2 and body["count_exact"] is True and body["next"] is None


def test_next_and_previous_links(reader):
    for i in range(5):
        make_signal(bar_ts=T0 + timedelta(minutes=i))
    page = reader.get("/api/v1/signals?limit=2&offset=2").json()
    assert len(page["results"]) == 2
    assert "offset=4" in page["next"] and page["previous"]
    last = reader.get("/api/v1/signals?limit=2&offset=4").json()
    assert len(last["results"]) == 1 and last["next"] is None
    assert reader.get("/api/v1/signals?limit=2&offset=50").json()["results"] == []


def test_limit_is_capped(reader):
    make_signal()
    from autotrader_site.pagination import EstimatedCountPagination

    assert EstimatedCountPagination.max_limit == 1000
    assert reader.get("/api/v1/signals?limit=100000").status_code == 200


def test_count_beyond_the_cap_is_an_estimate(reader, monkeypatch):
    from autotrader_site import pagination

    monkeypatch.setattr(pagination, "EXACT_COUNT_CAP", 3)
    for i in range(12):
        make_signal(bar_ts=T0 + timedelta(minutes=i), setup="ORB" if i % 2 else "EMA_CROSS")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE strategies_signal")
    body = reader.get("/api/v1/signals?limit=2").json()
    assert body["count_exact"] is False
    assert body["count"] >= 3 and body["next"]
    filtered = reader.get("/api/v1/signals?limit=2&setup=ORB").json()
    assert filtered["count_exact"] is False and filtered["count"] >= 3
    small = reader.get(
        "/api/v1/signals?limit=2&setup=ORB&since="
        + (T0 + timedelta(minutes=8)).isoformat().replace("+", "%2B")
    ).json()
    assert small["count_exact"] is True and small["count"] == 2


def test_browsable_api_renders_the_signal_list(reader):
    make_signal(reasons=["WINDOW"])
    resp = reader.get("/api/v1/signals", HTTP_ACCEPT="text/html")
    assert resp.status_code == 200 and b"WINDOW" in resp.content


def test_huge_offset_is_an_empty_page_not_an_error(reader):
    make_signal()
    for url in ("/api/v1/signals", "/api/v1/orders", "/api/v1/fills", "/api/v1/bars"):
        resp = reader.get(url, {"offset": "6360320633491977515304270954496"})
        assert resp.status_code == 200, url
        assert resp.json()["results"] == []
