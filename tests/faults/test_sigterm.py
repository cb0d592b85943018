"""Every long-running process stops within 5 s of SIGTERM in every state, its pending writes
flushed (real subprocesses, as compose and honcho stop them)."""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from datetime import UTC, datetime

import pytest
import redis
from django.db import connection

from tests.faults.lifecycle import (
    SilentServer,
    celery,
    free_port,
    heartbeat_wait,
    kill_group,
    manage,
    process_env,
    sigterm_and_wait,
    start,
)
from tests.marketdata.fake_polygon_ws import FakePolygonServer

STOP_LIMIT_SEC = 5.0
START = int(datetime(2025, 9, 19, 13, 30, tzinfo=UTC).timestamp())


def _database_url() -> str:
    """The test database the subprocess must write into (committed: transactional tests)."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _streamer(tmp_path, url: str, **env: str):
    environment = process_env(
        _database_url(),
        tmp_path,
        POLYGON_WS_URL=url,
        POLYGON_WS_KEY="good-key",
        POLYGON_WS_SYMBOLS="SPY,QQQ",
        STREAM_GAP_BACKFILL="0",
        **env,
    )
    log = tmp_path / "streamer.log"
    return start(manage("run_streamer"), environment, log), log


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_streamer_stops_while_connecting(tmp_path):
    silent = SilentServer()  # the TCP connect succeeds, the websocket handshake never answers
    proc, log = _streamer(tmp_path, f"ws://127.0.0.1:{silent.port}/stocks")
    try:
        heartbeat_wait(tmp_path, "streamer", lambda r: r.get("state") == "connecting", proc=proc)
        time.sleep(0.5)  # inside the 10 s open timeout
        stopped = sigterm_and_wait(proc, log)
    finally:
        kill_group(proc)
        silent.close()
    assert stopped.seconds < STOP_LIMIT_SEC, stopped.output
    assert stopped.returncode == 0, stopped.output
    assert "streamer stopped" in stopped.output


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_streamer_stops_while_backing_off(tmp_path):
    port = free_port()  # nothing listens: every connect is refused, the backoff grows to 60 s
    proc, log = _streamer(
        tmp_path, f"ws://127.0.0.1:{port}/stocks", POLYGON_WS_BACKOFF_MAX_SEC="60"
    )
    try:
        heartbeat_wait(tmp_path, "streamer", lambda r: r.get("state") == "backing_off", proc=proc)
        stopped = sigterm_and_wait(proc, log)
    finally:
        kill_group(proc)
    assert stopped.seconds < STOP_LIMIT_SEC, stopped.output
    assert stopped.returncode == 0, stopped.output


def _frames(seconds: int) -> list[list[dict]]:
    frames = []
    for n in range(seconds):
        s_ms = (START + n) * 1000
        frame = []
        for i, sym in enumerate(("SPY", "QQQ")):
            price = 100.0 + 50 * i + (n % 7) * 0.01
            frame.append(
                {
                    "ev": "A",
                    "sym": sym,
                    "o": price,
                    "h": price + 0.02,
                    "l": price - 0.02,
                    "c": price + 0.01,
                    "v": 10 + n % 5,
                    "vw": price,
                    "z": 3,
                    "s": s_ms,
                    "e": s_ms + 1000,
                }
            )
        frames.append(frame)
    return frames


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_streamer_stops_streaming_with_every_pending_tick_and_bar_written(tmp_path):
    from marketdata.models import Bar, Tick

    seconds = 570  # 9.5 minutes × 2 symbols; the last minute is still open at the stop
    # a pause as minute 9 begins: its ticks arrive after the flush of minute 8's bars
    server = FakePolygonServer(frames={"stocks": _frames(seconds)}, pauses={540: 2.0}).start()
    proc, log = _streamer(
        tmp_path,
        server.url,
        POLYGON_WS_BATCH="1000000",  # nothing written by size or timer: only bar closes ...
        POLYGON_WS_FLUSH_INTERVAL="600",
        POLYGON_WS_IDLE_CLOSE_SEC="600",
    )
    try:
        record = heartbeat_wait(
            tmp_path,
            "streamer",
            # all sent, nine minutes closed and written; the open one's ticks wait in memory
            lambda r: (
                r.get("bars_closed") == 2 * 9
                and r.get("pending", 0) > 0
                and r.get("last_data_age_sec", 0) > 1
            ),
            proc=proc,
        )
        time.sleep(0.5)
        stopped = sigterm_and_wait(proc, log)
    finally:
        kill_group(proc)
        server.stop()
    assert stopped.seconds < STOP_LIMIT_SEC, stopped.output
    assert stopped.returncode == 0, stopped.output
    assert server.all_done({"stocks"}) and 0 < record["pending"] <= 60
    assert Tick.objects.count() == 2 * seconds  # every second received, written once
    bars = Bar.objects.filter(source="stream")
    assert bars.count() == 2 * 10  # nine closed minutes + the open one closed at the stop
    last = bars.filter(ts=datetime.fromtimestamp(START + 540, tz=UTC))
    assert last.count() == 2 and all(b.provisional for b in last)  # stopped mid-minute


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_streamer_stops_within_the_deadline_when_a_flush_hangs(tmp_path):
    """The database accepts the TCP connection and never answers: the flush hangs. The stop
    cannot write, but it must not outlive the deadline either (exit status 70, logged)."""
    silent_db = SilentServer()
    server = FakePolygonServer(frames={"stocks": _frames(130)}).start()
    env = process_env(
        f"postgres://postgres@127.0.0.1:{silent_db.port}/never",
        tmp_path,
        POLYGON_WS_URL=server.url,
        POLYGON_WS_KEY="good-key",
        POLYGON_WS_SYMBOLS="SPY,QQQ",
        STREAM_GAP_BACKFILL="0",
    )
    log = tmp_path / "streamer.log"
    proc = start(manage("run_streamer"), env, log)
    try:
        heartbeat_wait(tmp_path, "streamer", lambda r: r.get("pending", 0) > 0, proc=proc)
        stopped = sigterm_and_wait(proc, log)
    finally:
        kill_group(proc)
        server.stop()
        silent_db.close()
    assert stopped.seconds < STOP_LIMIT_SEC, stopped.output
    assert stopped.returncode == 70, stopped.output
    assert "not stopped" in stopped.output


def test_streamer_without_a_key_exits_once_with_a_clear_message(tmp_path):
    env = process_env("postgres://postgres@127.0.0.1:1/none", tmp_path)
    env.update(POLYGON_WS_KEY="", POLYGON_API_KEY="")
    log = tmp_path / "streamer.log"
    proc = start(manage("run_streamer"), env, log)
    try:
        proc.wait(60)
    finally:
        kill_group(proc)
    output = log.read_text()
    assert proc.returncode == 0, output  # compose's restart: on-failure leaves it stopped
    assert "no Polygon key" in output and "POLYGON_WS_KEY" in output
    record = json.loads((tmp_path / "streamer.json").read_text())
    assert record["state"] == "disabled"


def _redis_url() -> str:
    from django.conf import settings

    return settings.REDIS_URL


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "running-a-task"])
def test_worker_stops_and_a_running_task_is_redelivered(tmp_path, busy):
    queue = f"sigterm-{uuid.uuid4().hex[:10]}"
    env = process_env(
        _database_url(),
        tmp_path,
        CELERY_BROKER_URL=_redis_url(),
        CELERY_RESULT_BACKEND=_redis_url(),
        REMAP_SIGTERM="SIGQUIT",  # as the Procfile and compose run it
    )
    log = tmp_path / "worker.log"
    cmd = celery(
        "worker",
        "-I",
        "tests.faults.lifecycle_tasks",
        "-P",
        "prefork",
        "-c",
        "1",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "INFO",
    )
    marker = tmp_path / "starts.txt"
    producer_redis = redis.Redis.from_url(_redis_url())
    proc = start(cmd, env, log)
    try:
        deadline = time.monotonic() + 60
        while "ready" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "ready" in log.read_text(), log.read_text()
        if busy:
            from celery import Celery

            Celery("sigterm-producer", broker=_redis_url(), set_as_current=False).send_task(
                "faults.sleep", args=[str(marker), 60], queue=queue
            )
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert marker.exists(), log.read_text()
        stopped = sigterm_and_wait(proc, log)
    finally:
        kill_group(proc)
    assert stopped.seconds < STOP_LIMIT_SEC, stopped.output
    if busy:  # cancelled, not acknowledged: the message is back on its queue for another worker
        assert producer_redis.llen(queue) == 1, stopped.output
        assert len(marker.read_text().splitlines()) == 1
    producer_redis.delete(queue)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_beats_and_stops(tmp_path):
    env = process_env(
        _database_url(),
        tmp_path,
        CELERY_BROKER_URL=_redis_url(),
        CELERY_RESULT_BACKEND=_redis_url(),
    )
    log = tmp_path / "beat.log"
    cmd = celery(
        "beat", "-l", "INFO", "--scheduler", "autotrader_site.beat:HeartbeatScheduler", "--pidfile="
    )
    proc = start(cmd, env, log)
    try:
        first = heartbeat_wait(tmp_path, "beat", lambda r: r.get("state") == "running", proc=proc)
        later = heartbeat_wait(tmp_path, "beat", lambda r: r["ts"] > first["ts"] + 0.1, proc=proc)
        stopped = sigterm_and_wait(proc, log)
    finally:
        kill_group(proc)
    assert later["pid"] == proc.pid
    assert stopped.seconds < STOP_LIMIT_SEC, stopped.output
    assert stopped.returncode == 0, stopped.output
    assert json.loads((tmp_path / "beat.json").read_text())["state"] == "stopping"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_web_stops_with_a_client_still_connected(tmp_path):
    port = free_port()
    env = process_env(_database_url(), tmp_path, PORT=str(port))
    log = tmp_path / "web.log"
    cmd = [
        *manage()[:1],
        "-m",
        "uvicorn",
        "autotrader_site.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--timeout-graceful-shutdown",
        "3",
    ]
    proc = start(cmd, env, log)
    client = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        assert client is not None, log.read_text()
        # a keep-alive client that never finishes its request holds a plain graceful stop
        client.sendall(b"GET /api/v1/diag/health HTTP/1.1\r\nHost: localhost\r\n")
        time.sleep(0.3)
        stopped = sigterm_and_wait(proc, log)
    finally:
        if client is not None:
            client.close()
        kill_group(proc)
    assert stopped.seconds < STOP_LIMIT_SEC, stopped.output
    # uvicorn re-raises the signal once its graceful shutdown is done
    assert stopped.returncode in (0, -signal.SIGTERM), stopped.output
    assert "Finished server process" in stopped.output
