"""A real Celery worker, configured as production (autotrader_site's Celery settings), keeps
running through a restart of its Redis (its own redis-server, tests/faults/own_servers.py) and
finishes every task published before and during the restart (issue 17: both workers of the
soak exited with status 1 on Redis channel errors)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.faults.crash_faults import ROOT
from tests.faults.own_servers import OwnRedis

TASKS = 24
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _worker(redis_url: str, dbname: str, log) -> subprocess.Popen:
    from django.db import connection

    s = connection.settings_dict
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    env = {
        **os.environ,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"postgres://{s['USER']}@{host}:{port}/{dbname}",
        "DRY_RUN": "1",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "autotrader_site", "worker",
         "-I", "tests.faults.redis_restart_tasks", "-c", "2", "-Q", "redis-restart",
         "-n", "redis-restart@%h", "--without-gossip", "--without-mingle", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_worker_survives_a_redis_restart_and_finishes_its_tasks(tmp_path):
    from celery import Celery
    from django.db import connection

    log_path = tmp_path / "worker.log"
    with OwnRedis() as redis_server, open(log_path, "w") as log:
        url = redis_server.url(0)
        producer = Celery("redis-restart-producer", broker=url, backend=url, set_as_current=False)
        producer.conf.task_publish_retry_policy = {"max_retries": 60, "interval_max": 1.0}
        worker = _worker(url, connection.settings_dict["NAME"], log)
        try:
            first = [
                producer.send_task("faults.redis_restart.step", args=[n], queue="redis-restart")
                for n in range(TASKS // 2)
            ]
            deadline = time.monotonic() + 60
            while sum(r.ready() for r in first) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)  # some done, the rest queued or running: Redis goes now
            assert sum(r.ready() for r in first) >= 3, log_path.read_text()[-3000:]
            redis_server.restart(down_sec=2.0)
            second = [
                producer.send_task("faults.redis_restart.step", args=[n], queue="redis-restart")
                for n in range(TASKS // 2, TASKS)
            ]
            pending = first + second
            deadline = time.monotonic() + 120  # a bound on the wait, not a speed assertion
            while worker.poll() is None and time.monotonic() < deadline:
                if all(r.ready() for r in pending):  # read by GET, not by a subscription
                    break
                time.sleep(0.2)
            alive = worker.poll() is None
            results = [r.result if r.ready() else None for r in pending]
        finally:
            worker.terminate()
            worker.wait(30)
    tail = log_path.read_text()[-3000:]
    assert redis_server.restarts == 1
    assert alive, f"the worker exited ({worker.returncode}):\n{tail}"
    assert results == [n * n for n in range(TASKS)], tail
