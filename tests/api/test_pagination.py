"""The lean signal list renders exactly like the DRF serializer; keyset pages walk the journal
exactly (ties on the bar time included) in one query each; counts, when asked, stay right on big
tables (estimate beyond the cap, flagged) and `next` never lies; `offset` still pages."""

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
    body = reader.get("/api/v1/signals?count=true").json()
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
    body = reader.get("/api/v1/signals?limit=2&count=1").json()
    assert body["count_exact"] is False
    assert body["count"] >= 3 and body["next"]
    filtered = reader.get("/api/v1/signals?limit=2&setup=ORB&count=1").json()
    assert filtered["count_exact"] is False and filtered["count"] >= 3
    small = reader.get(
        "/api/v1/signals?limit=2&setup=ORB&count=1&since="
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


def _walk(reader, url: str) -> list[int]:
    ids: list[int] = []
    while url:
        body = reader.get(url).json()
        ids += [row["id"] for row in body["results"]]
        url = body["next"]
    return ids


def test_keyset_pages_walk_every_row_once_with_ties_on_the_time(reader):
    from strategies.models import Signal

    # 4 setups on each of 3 bars (ties on bar_ts), created in shuffled order.
    for minute in (2, 0, 1):
        for setup in ("ORB", "EMA_CROSS", "SIGMA_FADE", "HOD_FAIL"):
            make_signal(bar_ts=T0 + timedelta(minutes=minute), setup=setup)
    expected = [pk for _, pk in sorted(Signal.objects.values_list("bar_ts", "id"), reverse=True)]
    assert _walk(reader, "/api/v1/signals?limit=5") == expected
    assert _walk(reader, "/api/v1/signals?limit=1") == expected
    # Filters stay on every page (the cursor carries the key, the URL the filter).
    orb = [row["id"] for row in reader.get("/api/v1/signals?setup=ORB&limit=100").json()["results"]]
    assert _walk(reader, "/api/v1/signals?setup=ORB&limit=2") == orb and len(orb) == 3


def test_previous_goes_back_to_the_same_page(reader):
    setups = ("ORB", "EMA_CROSS", "SIGMA_FADE")
    for i in range(7):
        make_signal(bar_ts=T0 + timedelta(minutes=i % 3), setup=setups[i // 3])
    first = reader.get("/api/v1/signals?limit=3").json()
    assert first["previous"] is None
    second = reader.get(first["next"]).json()
    back = reader.get(second["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]
    assert back["previous"] is None and back["next"] == first["next"]


def test_keyset_page_is_one_query_without_counting(reader):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for i in range(5):
        make_signal(bar_ts=T0 + timedelta(minutes=i))
    url = reader.get("/api/v1/signals?limit=2").json()["next"]
    with CaptureQueriesContext(connection) as queries:
        body = reader.get(url).json()
    assert len(body["results"]) == 2
    journal = [q["sql"] for q in queries if "strategies_signal" in q["sql"]]
    assert len(journal) == 1, journal
    assert "COUNT" not in journal[0].upper() and "OFFSET" not in journal[0].upper()


def test_orders_and_fills_page_by_cursor_too(reader):
    from tests.api.conftest import make_order

    orders = [make_order(symbol="SPY") for _ in range(5)]
    expected = sorted(((o.created_at, o.pk) for o in orders), reverse=True)
    assert _walk(reader, "/api/v1/orders?limit=2") == [pk for _, pk in expected]


def test_bad_cursor_is_a_400(reader):
    make_signal()
    for cursor in ("junk", "eyJrIjpbMV19", "eyJrIjpbIm5vdCBhIHRpbWUiLDFdfQ"):
        resp = reader.get("/api/v1/signals", {"cursor": cursor})
        assert resp.status_code == 400, cursor
        assert resp.json() == {"cursor": ["invalid cursor"]}
