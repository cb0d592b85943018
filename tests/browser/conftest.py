"""Browser-test plumbing: the real ASGI app under uvicorn on the test database, and Debian's
Chromium driven by Playwright.

The server is a subprocess (as in production), pointed at pytest-django's test database and the
same Redis, so bars published from the test process travel through the Redis channel layer to
the server's websocket consumer. Tests using it must commit their data (`transactional_db`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.private_redis import private_redis_running

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("DASHBOARD_SCREENSHOT_DIR", ROOT / "state" / "screenshots"))


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        pytest.skip("the browser test needs PostgreSQL (set DATABASE_URL)")
    auth = db["USER"] or "postgres"
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    """Poll until the server answers; bounded by attempts, fails with the server's log."""
    for _ in range(240):
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/admin/login/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"server did not answer at {url}:\n{log.read_text()[-3000:]}")


def _serve(tmp_path, redis_url: str):
    """uvicorn serving autotrader_site.asgi on a free port, on the test database (a generator:
    yields the LiveServer, stops the server afterwards)."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_database_url(),
        REDIS_URL=redis_url,
        CELERY_TASK_ALWAYS_EAGER="1",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        STATIC_ROOT=str(tmp_path / "static"),
        DB_CONN_MAX_AGE="0",
        PORT=str(port),
    )
    env.pop("TEST_DB_NAME", None)
    log = tmp_path / "server.log"
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "autotrader_site.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, log)
        yield LiveServer(url=url, process=process, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def asgi_server(transactional_db, tmp_path, settings):
    """The app on the test database and the shared Redis (the channel layer crosses processes)."""
    if not settings.REDIS_URL:
        pytest.skip("the browser test needs Redis (set REDIS_URL) for the channel layer")
    yield from _serve(tmp_path, settings.REDIS_URL)


@pytest.fixture
def private_redis():
    """A redis-server of the test's own, free to be killed (never the shared one)."""
    with private_redis_running() as redis:
        yield redis


@pytest.fixture
def asgi_server_private_redis(transactional_db, tmp_path, private_redis, settings):
    """The app with its channel layer (and cache) on `private_redis`; this test process
    publishes there too (its ledger writes reach the server's consumers)."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [private_redis.url], "prefix": "autotrader"},
        }
    }
    yield from _serve(tmp_path, private_redis.url)


def in_thread(fn, *args, **kwargs):
    """Run a database call in a short-lived thread that closes its connection afterwards.

    Playwright's sync API keeps an event loop in the test's thread, where Django refuses
    ORM calls; a thread of its own also leaves no stray connection behind to block the test
    database's teardown."""
    from django.db import connections

    result: dict = {}

    def target():
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            result["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    if thread.is_alive():
        pytest.fail(f"{fn!r} did not return within 120 s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.fixture
def browser():
    """Headless Debian Chromium, launched with the flags this closed network needs."""
    if not os.path.exists(CHROMIUM):
        # `make test` runs the script first; this covers a bare `pytest` on a new machine.
        script = Path(__file__).with_name("ensure_chromium.sh")
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
        if result.returncode != 0 or not os.path.exists(CHROMIUM):
            pytest.fail(f"{CHROMIUM} is missing and could not be installed:\n{result.stderr}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
