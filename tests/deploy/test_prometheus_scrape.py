"""`make run` as a new user runs it (embedded: SQLite under state/, no Redis, no metrics
setting), scraped every 2 s by a real Prometheus server (Debian's `prometheus`): every query of
the Grafana dashboard that applies to a replay returns data, and the last reconciliation is a
real time, not 0.

What applies is read from what the replay did, independently of the metrics: the signal outcomes
in the events journal, the orders and bars in the database. Provider and stream panels (Tradier,
Polygon, websocket) do not apply: a replay talks to no provider.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.private_redis import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "autotrader.json"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_SECONDS = 2
NOT_IN_A_REPLAY = ("tradier", "polygon", "stream_")


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _wait_for(url: str, process: subprocess.Popen, what: str, attempts: int = 240) -> None:
    for _ in range(attempts):
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}")
        try:
            _get(url, timeout=2)
            return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"{what} did not answer at {url}")


def _query(prometheus_url: str, expr: str) -> list:
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(_get(url))
    assert body["status"] == "success", body
    return body["data"]["result"]


def _dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [
        (panel["title"], target["expr"].replace("$setup", ".*"))
        for panel in panels
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def _what_the_replay_did(state: Path) -> dict:
    outcomes = set()
    for line in (state / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") in ("signal", "signal_outcome"):
            outcomes.add(event["outcome"])
    with sqlite3.connect(state / "autotrader.sqlite3") as db:
        orders = db.execute("SELECT COUNT(*) FROM trading_order").fetchone()[0]
        bars = db.execute("SELECT COUNT(*) FROM bars_1m").fetchone()[0]
    return {"outcomes": outcomes, "orders": orders, "bars": bars}


def _applies(expr: str, did: dict) -> bool:
    if any(word in expr for word in NOT_IN_A_REPLAY):
        return False
    if "autotrader_signal_total" in expr:
        wanted = [
            o for o in ("generated", "approved", "options_blocked", "risk_blocked") if o in expr
        ]
        return all(o in did["outcomes"] for o in wanted) and bool(did["outcomes"])
    if "orders_total" in expr or "decision_to_ack" in expr:
        return did["orders"] > 0
    if "bars_written" in expr or "bar_to_decision" in expr:
        return did["bars"] > 0
    return True  # gauges and reconciliation: set by every run


@pytest.fixture
def embedded_env(tmp_path):
    """The environment of a new user's checkout: no database, Redis or metrics settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "CELERY_TASK_ALWAYS_EAGER"}
    }
    env.update(
        STATE_DIR=str(tmp_path / "state"),
        STATIC_ROOT=str(tmp_path / "static"),
        EVENTS_JOURNAL=str(tmp_path / "state" / "events.jsonl"),
        PORT=str(free_port()),
        BIND_ADDRESS="127.0.0.1",
        AUTOTRADER_ENV_FILE=str(tmp_path / "no.env"),
    )
    return env


def test_real_prometheus_sees_every_applicable_dashboard_query_during_make_run(
    tmp_path, embedded_env
):
    if not os.path.exists(PROMETHEUS):
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus)")
    env = embedded_env
    web = f"http://127.0.0.1:{env['PORT']}"
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)

    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  evaluation_interval: {SCRAPE_SECONDS}s\n"
        "scrape_configs:\n  - job_name: autotrader\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{env['PORT']}']\n"
    )
    prometheus = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    prom = f"http://127.0.0.1:{prom_port}"
    session = None
    try:
        _wait_for(f"{prom}/-/ready", prometheus, "prometheus")
        log = (tmp_path / "session.log").open("w")
        session = subprocess.Popen(
            [*manage, "run_paper_session", "--speed", "0"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_for(f"{web}/metrics", session, "the embedded web server")
        deadline = time.monotonic() + 240
        while "Replay finished" not in (tmp_path / "session.log").read_text():
            assert session.poll() is None, (tmp_path / "session.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the replay did not finish in 240 s"
            time.sleep(1)
        time.sleep(3 * SCRAPE_SECONDS)  # the last counts scraped

        did = _what_the_replay_did(Path(env["STATE_DIR"]))
        assert did["bars"] > 300 and did["orders"] > 0 and "generated" in did["outcomes"]
        empty = [
            (title, expr)
            for title, expr in _dashboard_queries()
            if _applies(expr, did) and not _query(prom, expr)
        ]
        assert empty == []
        (reconciled,) = _query(prom, "max(autotrader_reconcile_last_success_timestamp)")
        assert float(reconciled["value"][1]) > 0
        # Counted in the replay process, served by the web process, seen by Prometheus.
        (bars,) = _query(prom, 'sum(autotrader_bars_written_total{source="replay"})')
        assert float(bars["value"][1]) == did["bars"]
    finally:
        for process in (session, prometheus):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
