"""A real Celery worker, configured as production (autotrader_site's Celery settings), keeps
running through a restart of its Redis (its own redis-server, tests/faults/own_servers.py) and
finishes every task published before and during the restart (issue 17: both workers of the
soak exited with status 1 on Redis channel errors)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

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


def _lost_connection_with_unacked_message(redis_server):
    """A kombu connection to a Redis that has just gone away, holding one delivered and
    unacknowledged message, whose first teardown is cut short the way Celery's `collect()` is
    when draining a pending BRPOP on the dead socket times out."""

    import redis
    from kombu import Connection

    connection = Connection(redis_server.url(0))
    queue = connection.SimpleQueue("consumer-teardown")
    queue.put({"n": 1})
    assert queue.get(timeout=5).payload == {"n": 1}  # delivered, not acknowledged
    real_close_self = connection._do_close_self
    calls = []

    def drain_timed_out_once():
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError("timed out draining the pending BRPOP")
        return real_close_self()

    connection._do_close_self = drain_timed_out_once
    redis.Redis(port=redis_server.port).shutdown(nosave=False)
    return connection


def _consumer_of(cls, connection):
    from autotrader_site.celery import app

    consumer = cls.__new__(cls)  # only what the connection-loss handler reads
    consumer.app, consumer.connection = app, connection
    consumer.qos_global, consumer.prefetch_multiplier = False, 1
    consumer.pool = SimpleNamespace(num_processes=2)
    return consumer


def test_a_lost_connection_whose_teardown_fails_does_not_end_the_worker():
    """Seen in the soak: after the Redis restart a worker exited 1 ("Unrecoverable error:
    AttributeError: 'NoneType' object has no attribute 'hostname'") while requeueing its
    unacknowledged messages through a connection Celery had already detached. The project's
    consumer (CELERY_WORKER_CONSUMER) survives the same teardown; Celery's own is the control."""
    import redis
    from celery.worker.consumer.consumer import Consumer as CeleryConsumer

    from autotrader_site.celery import app
    from autotrader_site.worker_consumer import Consumer

    assert app.conf.worker_consumer == "autotrader_site.worker_consumer:Consumer"
    lost = redis.ConnectionError("Connection closed by server.")
    with OwnRedis() as redis_server:
        control = _consumer_of(CeleryConsumer, _lost_connection_with_unacked_message(redis_server))
        with pytest.raises(AttributeError):
            control.on_connection_error_after_connected(lost)
        redis_server.start()
        ours = _consumer_of(Consumer, _lost_connection_with_unacked_message(redis_server))
        ours.on_connection_error_after_connected(lost)  # logged, not raised
        assert ours.connection is None  # the consumer goes on to reconnect
        redis_server.start()
