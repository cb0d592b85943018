from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from analytics.models import BacktestRun, SweepRun
from strategies.models import Signal


@pytest.fixture
def client(db):
    user = get_user_model().objects.create_user("reader", password="pw-reader-1")
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_signal_summary_needs_login(db):
    assert APIClient().get("/api/v1/analytics/signals").status_code in (401, 403)


def test_signal_summary_endpoint_filters_by_time(client):
    for minute, outcome in ((0, "dry_run"), (5, "risk_blocked")):
        Signal.objects.create(
            setup="ORB", symbol="SPY", execution_symbol="SPY",
            bar_ts=datetime(2024, 3, 4, 15, minute, tzinfo=UTC), outcome=outcome,
            reasons=["MAX_CONCURRENT"] if outcome == "risk_blocked" else [],
        )  # fmt: skip
    body = client.get("/api/v1/analytics/signals").json()
    assert body["total"] == 2
    assert body["by_setup"]["ORB"]["outcomes"] == {"dry_run": 1, "risk_blocked": 1}
    assert body["block_reasons"] == {"MAX_CONCURRENT": 1}
    later = client.get("/api/v1/analytics/signals", {"start": "2024-03-04T15:01:00Z"}).json()
    assert later["total"] == 1


def test_signal_summary_rejects_a_bad_range(client):
    response = client.get(
        "/api/v1/analytics/signals", {"start": "2024-03-05T00:00:00Z", "end": "2024-03-04T00:00Z"}
    )
    assert response.status_code == 400
    assert "end" in response.json()
    assert client.get("/api/v1/analytics/signals", {"start": "yesterday"}).status_code == 400


def test_backtest_and_sweep_lists(client):
    sweep = SweepRun.objects.create(grid={"axes": {"RISK_STOP_ATR_MULTIPLIER": [1.0, 1.5]}})
    BacktestRun.objects.create(name="a", params={"x": 1}, stats={"trades": 2}, trades=[{}, {}])
    BacktestRun.objects.create(name="b", sweep=sweep, trades=[])
    runs = client.get("/api/v1/analytics/backtests").json()
    assert runs["count"] == 2
    assert {r["name"]: r["trade_count"] for r in runs["results"]} == {"a": 2, "b": 0}
    only_sweep = client.get("/api/v1/analytics/backtests", {"sweep": sweep.pk}).json()
    assert [r["name"] for r in only_sweep["results"]] == ["b"]
    detail = client.get(f"/api/v1/analytics/backtests/{runs['results'][-1]['id']}").json()
    assert "trades" in detail
    sweeps = client.get("/api/v1/analytics/sweeps").json()
    assert sweeps["results"][0]["grid"]["axes"] == {"RISK_STOP_ATR_MULTIPLIER": [1.0, 1.5]}
    assert client.get(f"/api/v1/analytics/sweeps/{sweep.pk}").status_code == 200
