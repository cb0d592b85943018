"""A real Celery worker process on Redis for tests and benchmarks: its own queue (nothing else
on the shared Redis is consumed), the database the caller names, stopped by its own id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from tests.conftest import ROOT


def database_url_named(name: str) -> str:
    """DATABASE_URL with its database replaced by `name` (the test database)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def celery_worker(*, queue: str, database: str, concurrency: int = 1):
    env = {
        **os.environ,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "DATABASE_URL": database_url_named(database),
    }
    env.pop("TEST_DB_NAME", None)
    cmd = [
        sys.executable, "-m", "celery", "-A", "autotrader_site", "worker", "-P", "prefork",
        "-c", str(concurrency), "-Q", queue, "-n", f"{queue}@%h", "--without-gossip",
        "--without-mingle", "--without-heartbeat", "-l", "WARNING",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # warm shutdown of this worker only
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
