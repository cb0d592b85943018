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
