"""The default PROMETHEUS_MULTIPROC_DIR: fresh for each run, shared by the processes of a run,
with no setting at all (what `make run` and honcho get)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from autotrader_site.metrics_dir import _start_time, multiproc_dir_default

ROOT = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_first_process_of_a_run_empties_what_the_last_run_left(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    dead = _dead_pid()
    (metrics / f"owner_{dead}_123").touch()
    (metrics / f"counter_{dead}.db").write_bytes(b"old counts")
    (metrics / f"gauge_max_{dead}.db").write_bytes(b"old gauge")

    chosen = multiproc_dir_default(tmp_path, "")

    assert chosen == str(metrics) == os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert sorted(p.name for p in metrics.iterdir()) == [
        f"owner_{os.getpid()}_{_start_time(os.getpid())}"
    ]


def test_later_process_joins_a_live_run_and_drops_dead_live_gauges(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (metrics / f"owner_{running.pid}_{_start_time(running.pid)}").touch()
        (metrics / f"counter_{running.pid}.db").write_bytes(b"live counts")
        dead = _dead_pid()
        (metrics / f"counter_{dead}.db").write_bytes(b"a finished process still counted")
        (metrics / f"gauge_livemax_{dead}.db").write_bytes(b"a dead process's live gauge")
        (metrics / f"owner_{dead}_99").touch()

        multiproc_dir_default(tmp_path, "")

        names = {p.name for p in metrics.iterdir()}
        assert f"counter_{running.pid}.db" in names
        assert f"counter_{dead}.db" in names  # counters of finished processes keep counting
        assert f"gauge_livemax_{dead}.db" not in names
        assert f"owner_{dead}_99" not in names
        assert f"owner_{running.pid}_{_start_time(running.pid)}" in names
    finally:
        running.kill()
        running.wait()


def test_a_reused_pid_with_another_start_time_is_not_an_owner(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    me = os.getpid()
    (metrics / f"owner_{me}_{(_start_time(me) or 0) + 1}").touch()  # pid alive, other process
    (metrics / "counter_1.db").write_bytes(b"old")
    multiproc_dir_default(tmp_path, "")
    assert "counter_1.db" not in {p.name for p in metrics.iterdir()}


def test_off_and_an_explicit_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "off")
    assert multiproc_dir_default(tmp_path, "off") == ""
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    explicit = tmp_path / "volume"
    (explicit / "counter_1.db").parent.mkdir()
    (explicit / "counter_1.db").write_bytes(b"kept: compose empties its volume itself")
    assert multiproc_dir_default(tmp_path, str(explicit)) == str(explicit)
    assert (explicit / "counter_1.db").exists()


_COUNT = """
import os, sys, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
django.setup()
from autotrader_site import metrics
metrics.BARS_WRITTEN_TOTAL.labels(source="proc-test").inc(int(sys.argv[1]))
print("counted", flush=True)
if len(sys.argv) > 2:
    sys.stdin.read()  # stay alive until the test closes stdin
"""
_SCRAPE = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
django.setup()
from autotrader_site.metrics_view import metrics_payload
print(metrics_payload().decode())
"""


def test_processes_of_one_run_add_up_without_any_setting(tmp_path):
    """Three processes with no PROMETHEUS_MULTIPROC_DIR and one STATE_DIR: a long-lived one
    (the worker), a short one (a replay), and the web process's /metrics sees both counts."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(STATE_DIR=str(tmp_path), DATABASE_URL="", REDIS_URL="")
    worker = subprocess.Popen(
        [sys.executable, "-c", _COUNT, "2", "stay"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout.readline().strip() == "counted"
        subprocess.run([sys.executable, "-c", _COUNT, "3"], cwd=ROOT, env=env, check=True)
        text = subprocess.run(
            [sys.executable, "-c", _SCRAPE],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)
    assert 'autotrader_bars_written_total{source="proc-test"} 5.0' in text
    # The next run starts from zero: nobody of this run is alive any more.
    text = subprocess.run(
        [sys.executable, "-c", _SCRAPE], cwd=ROOT, env=env, check=True, capture_output=True
    ).stdout.decode()
    assert "proc-test" not in text
