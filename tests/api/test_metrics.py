"""/metrics: spec names, open by default, optional auth, worker-process samples aggregated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC_NAMES = [
    "autotrader_signal_total",
    "autotrader_tradier_request_total",
    "autotrader_polygon_request_total",
    "autotrader_active_trades",
    "autotrader_bar_to_decision_seconds",
    "autotrader_decision_to_ack_seconds",
    "autotrader_stream_messages_total",
    "autotrader_stream_reconnects_total",
    "autotrader_stream_lag_seconds",
    "autotrader_reconcile_total",
]


def test_metrics_open_and_lists_every_spec_name(client):
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("text/plain")
    text = resp.content.decode()
    for name in SPEC_NAMES:
        assert f"# TYPE {name}" in text, name


@pytest.mark.django_db
def test_metrics_can_require_auth(client, settings, django_user_model):
    settings.METRICS_REQUIRE_AUTH = True
    assert client.get("/metrics").status_code == 401
    from rest_framework.authtoken.models import Token

    user = django_user_model.objects.create_user("prom", password="x-prom-pass")
    token = Token.objects.create(user=user)
    resp = client.get("/metrics", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert resp.status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Token wrong").status_code == 401


_WORKER = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
django.setup()
from autotrader_site import metrics
metrics.SIGNAL_TOTAL.labels(setup="WORKER_PROC", outcome="submitted").inc(3)
metrics.TRADIER_REQUEST_TOTAL.labels(endpoint="orders", status="200").inc()
metrics.ACTIVE_TRADES.set(2)
"""


def test_counter_from_a_separate_worker_process_reaches_metrics(client, settings, tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", _WORKER], cwd=ROOT, env=env, check=True, timeout=120)
    assert list(tmp_path.glob("*.db")), "the worker wrote no multiprocess files"
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    text = client.get("/metrics").content.decode()
    assert 'autotrader_signal_total{outcome="submitted",setup="WORKER_PROC"} 3.0' in text
    assert 'autotrader_tradier_request_total{endpoint="orders",status="200"} 1.0' in text
    assert "autotrader_active_trades 2.0" in text
    for name in SPEC_NAMES:  # names without samples are still listed
        assert f"# TYPE {name}" in text, name


_REPLAY_WORKER = """
import django, os
from datetime import date
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
django.setup()
from marketdata.replay import replay_bars, synthetic_sessions
stats = replay_bars(synthetic_sessions(symbol="SPY", sessions=1, seed=7, end=date(2025, 9, 19)))
print(stats.published)
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics_after_a_replay_session_in_a_worker_process(client, settings, tmp_path):
    """The acceptance check: a paper session replayed in another process (as a Celery worker
    would run it) shows up in the web process's /metrics."""
    from django.db import connection
    from prometheus_client.parser import text_string_to_metric_families

    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    if db.get("PASSWORD"):
        url = url.replace(f"{db['USER']}@", f"{db['USER']}:{db['PASSWORD']}@")
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DATABASE_URL": url,
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "TEST_DB_NAME": "",
    }
    out = subprocess.run(
        [sys.executable, "-c", _REPLAY_WORKER],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=600,
        capture_output=True,
        text=True,
    )
    assert int(out.stdout.strip().splitlines()[-1]) > 300
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    text = client.get("/metrics").content.decode()
    for name in SPEC_NAMES:
        assert f"# TYPE {name}" in text, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    signals = {k: v for k, v in samples.items() if k[0] == "autotrader_signal_total"}
    assert sum(signals.values()) > 0, "no signal counted"
    outcomes = {dict(labels)["outcome"] for _, labels in signals}
    assert "generated" in outcomes
    bars = samples.get(("autotrader_bars_written_total", (("source", "replay"),)), 0)
    assert bars > 300
