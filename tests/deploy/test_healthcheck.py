"""docker/healthcheck.py: the web container is healthy while it answers HTTP (a 503 from the
health endpoint included), unhealthy on 5xx or no answer."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.deploy.compose_tools import ROOT

SCRIPT = ROOT / "docker" / "healthcheck.py"


class _Handler(BaseHTTPRequestHandler):
    status = 200
    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server API)
        type(self).seen.append((self.path, self.headers.get("Host")))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, handler
    httpd.shutdown()
    httpd.server_close()


def _run(port: int, *args: str, hosts: str = "trader.example.com") -> subprocess.CompletedProcess:
    env = {"PORT": str(port), "DJANGO_ALLOWED_HOSTS": hosts, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("status", "healthy"), [(200, True), (503, True), (404, True), (500, False)]
)
def test_status_decides_health(server, status, healthy):
    httpd, handler = server
    handler.status = status
    result = _run(httpd.server_port)
    assert (result.returncode == 0) is healthy, result.stdout
    assert handler.seen == [("/api/v1/diag/health", "trader.example.com")]


def test_first_concrete_allowed_host_is_sent(server):
    httpd, handler = server
    _run(httpd.server_port, "/healthcheck", hosts="*,.example.org,web")
    assert handler.seen == [("/healthcheck", "example.org")]


def test_no_answer_is_unhealthy():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _run(port)  # nothing listens there any more
    assert result.returncode == 1
    assert "unhealthy" in result.stdout


def _heartbeat(directory, name: str, *, age: float, state: str, max_age: str = "60"):
    import json
    import time

    if age >= 0:
        record = {"name": name, "pid": 1, "ts": time.time() - age, "state": state}
        (directory / f"{name}.json").write_text(json.dumps(record))
    env = {"HEARTBEAT_DIR": str(directory), "HEARTBEAT_MAX_AGE_SEC": max_age, "PATH": "/usr/bin"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "heartbeat", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("age", "state", "healthy"),
    [
        (5, "streaming", True),
        (59, "backing_off", True),  # reconnecting is alive: the loop still beats
        (61, "streaming", False),  # a stuck loop stops beating
        (-1, "", False),  # never written
        (5, "stopped", False),
        (3600, "disabled", True),  # no key: exited on purpose, nothing to restart
    ],
)
def test_heartbeat_age_and_state_decide_health(tmp_path, age, state, healthy):
    result = _heartbeat(tmp_path, "streamer", age=age, state=state)
    assert (result.returncode == 0) is healthy, result.stdout


def test_heartbeat_written_by_the_app_is_read_by_the_probe(tmp_path, settings):
    from autotrader_site.heartbeat import Heartbeat

    settings.HEARTBEAT_DIR = tmp_path
    beat = Heartbeat("beat", interval=3600)
    assert beat.beat(state="running") is True
    assert beat.beat(state="running") is False  # not due yet: no write per loop pass
    result = _heartbeat(tmp_path, "beat", age=-1, state="")
    assert result.returncode == 0 and "running" in result.stdout
