"""The setup API: who may do what, errors with line and column, preview markers, the Celery
backtest button's link, and a stored definition that breaks never stopping the engine."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.strategies.test_real_sessions import load_bars

pytestmark = pytest.mark.django_db

TEXT = "name: API_CROSS\ncondition: crosses_above(close, vwap) and rvol >= 0.8\n"


@pytest.fixture
def editor(django_user_model):
    from rest_framework.test import APIClient

    user = django_user_model.objects.create_user("editor", password="editor-pass-1")
    user.user_permissions.add(Permission.objects.get(codename="change_usersetup"))
    user = django_user_model.objects.get(pk=user.pk)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def stored_bars():
    from marketdata.services import bars_upsert

    bars = [b for b in load_bars("data/SPY_1m_2011-01.csv") if b.ts.day in (3, 4)]
    bars_upsert(bars=bars)
    return bars


def test_validate_reports_line_and_column(reader):
    resp = reader.post("/api/v1/setups/validate", {"text": "name: X\ncondition: rvol >= foo\n"})
    assert resp.status_code == 400
    assert resp.json() == {"valid": False, "name": None, "version": None, "line": 2,
                           "column": 20, "error": "condition: unknown name 'foo'"}  # fmt: skip
    ok = reader.post("/api/v1/setups/validate", {"text": TEXT}).json()
    assert ok["valid"] and ok["name"] == "API_CROSS" and len(ok["version"]) == 12


def test_create_needs_the_edit_permission_and_starts_on_paper(reader, editor):
    assert reader.post("/api/v1/setups", {"text": TEXT}).status_code == 403
    resp = editor.post("/api/v1/setups", {"text": TEXT})
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert (body["name"], body["kind"], body["mode"], body["enabled"]) == (
        "API_CROSS", "admin", "paper", True,
    )  # fmt: skip
    names = {r["name"] for r in reader.get("/api/v1/setups").json()["results"]}
    assert {"API_CROSS", "HOD_FAIL"} <= names
    clash = editor.post("/api/v1/setups", {"text": "name: ORB\ncondition: rvol > 1\n"})
    assert clash.status_code == 400 and "already defined" in clash.json()["error"]


def test_going_live_needs_the_trading_permission_and_the_current_version(editor, trader):
    version = editor.post("/api/v1/setups", {"text": TEXT}).json()["version"]
    assert editor.post("/api/v1/setups/API_CROSS/live", {"version": version}).status_code == 403
    stale = trader.post("/api/v1/setups/API_CROSS/live", {"version": "0" * 12})
    assert stale.status_code == 400 and "is at version" in stale.json()["error"]
    live = trader.post("/api/v1/setups/API_CROSS/live", {"version": version})
    assert live.status_code == 200 and live.json()["mode"] == "live"
    off = editor.post("/api/v1/setups/API_CROSS/enable", {"enabled": False}, format="json")
    assert off.status_code == 200 and off.json()["enabled"] is False
    audit = editor.get("/api/v1/setups/API_CROSS/audit").json()["results"]
    assert [a["action"] for a in audit] == ["disabled", "live", "created"]


def test_preview_lists_where_it_would_have_fired_as_markers(editor, stored_bars):
    from dataclasses import replace

    from strategies.config import StrategyConfig
    from strategies.scan import decisions_scan

    editor.post("/api/v1/setups", {"text": TEXT})
    body = editor.get("/api/v1/setups/API_CROSS/preview?symbol=SPY").json()
    cfg = replace(StrategyConfig.from_settings(), enabled_setups=("API_CROSS",))
    expected = [row["ts"] for row, ds in decisions_scan(symbol="SPY", bars=stored_bars, cfg=cfg)
                if ds and ds[0].fired]  # fmt: skip
    assert expected and [f["bar_ts"] for f in body["fires"]] == [
        t.isoformat().replace("+00:00", "Z") for t in expected
    ]
    assert len(body["markers"]) == len(expected)
    assert {m["shape"] for m in body["markers"]} == {"arrowUp"}


def test_backtest_button_runs_a_celery_backtest_and_links_its_report(editor, stored_bars):
    from analytics.models import BacktestRun

    editor.post("/api/v1/setups", {"text": TEXT})
    resp = editor.post("/api/v1/setups/API_CROSS/backtest", {"symbol": "SPY"})
    assert resp.status_code == 202, resp.content
    body = resp.json()
    run = BacktestRun.objects.get(pk=body["run_id"])
    assert body["report_url"] == f"/admin/analytics/backtestrun/{run.pk}/change/"
    assert run.params["setups"] == ["API_CROSS"]
    status = editor.get(body["status_url"]).json()
    assert status["state"] == "done" and status["run_id"] == run.pk


def test_a_stored_definition_that_no_longer_parses_is_skipped_not_fatal(settings, stored_bars):
    from strategies.models import Signal, UserSetup
    from strategies.services import evaluate_bar
    from strategies.setups.registry import setups_broken, setups_changed

    UserSetup.objects.create(name="BAD", text="name: BAD\ncondition: rvol >=\n", version="x")
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    setups_changed()
    assert [e.name for e in setups_broken()] == ["BAD"]
    for b in stored_bars:
        evaluate_bar(symbol="SPY", bar_ts=b.ts)
    assert Signal.objects.filter(setup="EMA_CROSS").exists()


def test_admin_creates_validates_and_approves_a_setup(superuser, django_user_model):
    from django.test import Client

    from strategies.models import UserSetup

    client = Client()
    client.force_login(django_user_model.objects.get(username="root"))
    bad = client.post("/admin/strategies/usersetup/add/", {"text": "name: X\ncondition: rvol >=\n",
                                                           "enabled": "on"})  # fmt: skip
    assert bad.status_code == 200 and b"line 2, column" in bad.content
    assert not UserSetup.objects.exists()
    ok = client.post("/admin/strategies/usersetup/add/", {"text": TEXT, "enabled": "on"})
    assert ok.status_code == 302
    row = UserSetup.objects.get(name="API_CROSS")
    page = client.get(f"/admin/strategies/usersetup/{row.pk}/change/")
    assert b"paper" in page.content and b"/api/v1/setups/API_CROSS/backtest" in page.content
    client.post("/admin/strategies/usersetup/", {"action": "approve_live",
                                                 "_selected_action": [row.pk]})  # fmt: skip
    from strategies.setups.registry import setup_get

    assert setup_get("API_CROSS").mode == "live"


JUMP = """\
name: JUMP
condition: close - prev(close) >= 0.085
stop: close - 1
target_one: close + 1
target_two: close + 2
cooldown_sec: 600
"""


def test_preview_markers_sit_on_the_bars_worked_out_by_hand(editor, stored_bars):
    # SPY 2011-01-03/04, regular session: a one-bar gain of at least 8.5 cents happens only on
    # the 4th, at 15:00Z (126.88 -> 126.98), 15:04Z (+0.09: inside the 600 s cooldown of 15:00)
    # and 19:40Z (126.73 -> 126.85). Chart time is New York wall time (EST: UTC-5) as seconds.
    from datetime import UTC, datetime

    editor.post("/api/v1/setups", {"text": JUMP})
    body = editor.get("/api/v1/setups/JUMP/preview?symbol=SPY").json()
    assert [(f["bar_ts"], f["entry"], f["stop"]) for f in body["fires"]] == [
        ("2011-01-04T15:00:00Z", 126.98, 125.98),
        ("2011-01-04T19:40:00Z", 126.85, 125.85),
    ]
    wall = [datetime(2011, 1, 4, 10, 0, tzinfo=UTC), datetime(2011, 1, 4, 14, 40, tzinfo=UTC)]
    assert [m["time"] for m in body["markers"]] == [int(t.timestamp()) for t in wall]
    assert {(m["position"], m["shape"], m["text"]) for m in body["markers"]} == {
        ("belowBar", "arrowUp", "JUMP")
    }
    later = editor.get("/api/v1/setups/JUMP/preview?symbol=SPY&start=2011-01-04T16:00:00Z")
    assert [f["bar_ts"] for f in later.json()["fires"]] == ["2011-01-04T19:40:00Z"]
    assert editor.get("/api/v1/setups/NOPE/preview?symbol=SPY").status_code == 400


def test_dashboard_offers_the_setup_preview_on_its_chart(editor, django_user_model):
    from django.test import Client

    user = django_user_model.objects.create_user("viewer", password="viewer-pass-1")
    client = Client()
    client.force_login(user)
    page = client.get("/").content.decode()
    assert 'id="preview-form"' in page and 'id="preview-setup"' in page
