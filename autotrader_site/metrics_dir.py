"""A working PROMETHEUS_MULTIPROC_DIR in every run mode, so `/metrics` shows what every process
counted (the replay, the Celery worker and beat, the streamer), not only the web process.

prometheus_client picks its multi-process value store when it is imported, from the environment,
so settings call `multiproc_dir_default` first thing. Unless PROMETHEUS_MULTIPROC_DIR is set (the
compose file mounts a volume and empties it in its `migrate` step), the directory is
`<STATE_DIR>/metrics`, made fresh for each run: the first process of a run (no process of the
previous run alive) empties it, the later ones (web, worker, children) join it. Each process
leaves a marker `owner_<pid>_<start time>`; a marker whose process is gone no longer counts, and
the live-gauge files of dead processes are removed (what `mark_process_dead` does), so a crashed
worker's gauges do not linger. `PROMETHEUS_MULTIPROC_DIR=off` keeps one registry per process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
from pathlib import Path

OFF = "off"
_OWNER = re.compile(r"^owner_(\d+)_(\d+)$")
_LIVE_GAUGE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None when it does not exist)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(pid: int, started: int | None = None) -> bool:
    if not Path("/proc").is_dir():  # no procfs: trust the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    now = _start_time(pid)
    return now is not None and (started is None or now == started)


def _claim(directory: Path) -> None:
    """Under the lock: empty the directory if no process of the last run lives, else tidy the
    dead processes' markers and live gauges; then register this process."""
    live_owners = False
    for entry in directory.iterdir():
        owner = _OWNER.match(entry.name)
        if owner is None:
            continue
        if _alive(int(owner[1]), int(owner[2])):
            live_owners = True
        else:
            entry.unlink(missing_ok=True)
    for entry in directory.iterdir():
        if not live_owners:
            entry.unlink(missing_ok=True)  # a new run: counters start from zero
            continue
        gauge = _LIVE_GAUGE.match(entry.name)
        if gauge is not None and not _alive(int(gauge[1])):
            entry.unlink(missing_ok=True)
    pid = os.getpid()
    (directory / f"owner_{pid}_{_start_time(pid) or 0}").touch()


def multiproc_dir_default(state_dir: Path, configured: str) -> str:
    """The multi-process directory to use ("" for none) and, as prometheus_client needs, the
    environment variable set to it (also for child processes)."""
    if configured.lower() == OFF:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        _value_store_refresh()
        return ""
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory = state_dir / "metrics"
        directory.mkdir(parents=True, exist_ok=True)
        with open(state_dir / "metrics.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                _claim(directory)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    _value_store_refresh()
    return str(directory)


def _value_store_refresh() -> None:
    """prometheus_client chose its value store at import; if something imported it before the
    settings, choose again so the metrics defined from now on follow the environment."""
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        with contextlib.suppress(AttributeError):
            values.ValueClass = values.get_value_class()
