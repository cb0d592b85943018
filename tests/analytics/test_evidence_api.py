"""Walk-forward and drift ledger through the API and the admin."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from analytics.models import DriftEntry, WalkForwardRun

pytestmark = pytest.mark.django_db
T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)


def _client(staff=False):
    user = get_user_model().objects.create_user(
        "staff" if staff else "reader", password="pw-1-long", is_staff=staff
    )
    api = APIClient()
    api.force_authenticate(user)
    return api


def _entry(setup, minute, status="matched", entry_bps=None, exit_bps=None, **extra):
    return DriftEntry.objects.create(
        symbol="SPY", execution_symbol="SPY", setup=setup, signal_ts=T0.replace(minute=minute),
        status=status, entry_slippage_bps=entry_bps, exit_slippage_bps=exit_bps,
        computed_at=T0, **extra,
    )  # fmt: skip


def test_drift_summary_per_setup_by_hand():
    _entry("ORB", 1, entry_bps=1.0, exit_bps=3.0, live_pnl=Decimal("10"), sim_pnl=Decimal("12"))
    _entry("ORB", 2, entry_bps=2.0, exit_bps=None, live_pnl=Decimal("-4"), sim_pnl=Decimal("-3"))
    _entry("ORB", 3, status="missed", sim_pnl=Decimal("5"))
    _entry("EMA_CROSS", 4, status="live_only", live_pnl=Decimal("7"))
    body = _client().get("/api/v1/analytics/drift/summary").json()
    orb = body["by_setup"]["ORB"]
    assert (orb["pairs"], orb["matched"], orb["missed"], orb["live_only"]) == (3, 2, 1, 0)
    assert orb["entry_slippage_bps"] == 1.5 and orb["exit_slippage_bps"] == 3.0
    assert orb["live_pnl"] == 6.0 and orb["sim_pnl"] == 9.0  # matched pairs only
    assert body["by_setup"]["EMA_CROSS"]["live_only"] == 1
    assert body["all"]["pairs"] == 3
    later = _client_get_reader("/api/v1/analytics/drift/summary", start="2024-03-04T15:03:00Z")
    assert later["all"]["missed"] == 1 and later["all"]["matched"] == 0


def _client_get_reader(url, **params):
    user = get_user_model().objects.get_or_create(username="reader2")[0]
    api = APIClient()
    api.force_authenticate(user)
    return api.get(url, params).json()


def test_drift_entries_filter_by_setup_and_status():
    _entry("ORB", 1, entry_bps=1.0)
    _entry("ORB", 2, status="missed")
    _entry("EMA_CROSS", 3, entry_bps=0.0)
    api = _client()
    rows = api.get("/api/v1/analytics/drift", {"setup": "ORB"}).json()["results"]
    assert [r["status"] for r in rows] == ["missed", "matched"]  # newest signal first
    assert len(api.get("/api/v1/analytics/drift", {"status": "missed"}).json()["results"]) == 1
    assert APIClient().get("/api/v1/analytics/drift").status_code in (401, 403)


def test_starting_a_walk_forward_needs_staff_and_runs_eagerly(settings, tmp_path):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from tests.conftest import shared_file

    body = {"grid": ["RISK_STOP_ATR_MULTIPLIER=1.0,2.0"], "symbols": ["SPY"],
            "data": str(shared_file("data/SPY_1m_2011-01.csv")), "train": 12, "test": 4,
            "setups": ["EMA_CROSS"]}  # fmt: skip
    assert _client().post("/api/v1/analytics/walkforwards", body, format="json").status_code == 403
    staff = _client(staff=True)
    bad = staff.post("/api/v1/analytics/walkforwards", {**body, "grid": ["NOPE=1"]}, format="json")
    assert bad.status_code == 400 and "NOPE" in bad.json()["detail"]
    response = staff.post("/api/v1/analytics/walkforwards", body, format="json")
    assert response.status_code == 202, response.content
    run = WalkForwardRun.objects.get(pk=response.json()["id"])
    assert run.status == "done" and len(run.folds) == 2
    listed = staff.get("/api/v1/analytics/walkforwards").json()["results"]
    assert listed[0]["id"] == run.pk and listed[0]["summary"]["cells"] == 4
    detail = staff.get(f"/api/v1/analytics/walkforwards/{run.pk}").json()
    assert detail["summary"]["folds"][0]["chosen"]["RISK_STOP_ATR_MULTIPLIER"] in (1.0, 2.0)


def test_the_admin_lists_walk_forward_runs_and_drift_entries(client):
    admin = get_user_model().objects.create_superuser("boss", password="pw-boss-1")
    client.force_login(admin)
    WalkForwardRun.objects.create(plan={"grid": {}}, status="done")
    _entry("ORB", 1, entry_bps=1.0)
    for url in ("/admin/analytics/walkforwardrun/", "/admin/analytics/driftentry/"):
        assert client.get(url).status_code == 200, url
    entry = DriftEntry.objects.get()
    assert client.get(f"/admin/analytics/driftentry/{entry.pk}/change/").status_code == 200


def test_drift_ledger_command_with_no_signals_says_so(capsys):
    call_command("drift_ledger", "--start", "2024-03-04", "--end", "2024-03-04")
    assert "nothing to compare" in capsys.readouterr().out


def test_the_daily_drift_task_skips_a_day_without_signals():
    from analytics.tasks import drift_ledger_daily

    assert drift_ledger_daily() == {"symbols": [], "all": None}
    assert DriftEntry.objects.count() == 0
