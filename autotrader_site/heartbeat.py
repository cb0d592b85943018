"""Heartbeats of the processes that serve no HTTP: beat, the streamer, the account stream.

Each writes `HEARTBEAT_DIR/<name>.json` (atomically: write then rename) at least every
`HEARTBEAT_INTERVAL_SEC` from the loop that does its work — a stuck loop stops beating, a
merely alive process does not — with what it is doing (`state`) and anything else useful.
`docker/healthcheck.py heartbeat <name>` reads it (standard library only) and fails when it is
older than `HEARTBEAT_MAX_AGE_SEC`; the compose healthchecks use that.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path


def heartbeat_dir() -> Path:
    from django.conf import settings

    return Path(settings.HEARTBEAT_DIR)


class Heartbeat:
    def __init__(
        self, name: str, *, directory: Path | None = None, interval: float | None = None
    ) -> None:
        from django.conf import settings

        self.name = name
        self.path = (directory or heartbeat_dir()) / f"{name}.json"
        self.interval = interval if interval is not None else settings.HEARTBEAT_INTERVAL_SEC
        self.last = 0.0
        self.fields: dict = {}

    def beat(self, *, force: bool = False, **fields) -> bool:
        """Record `fields` (merged with earlier ones); written when due or forced. Never
        raises: a full disk must not stop trading."""
        self.fields.update(fields)
        now = time.time()
        if not force and now - self.last < self.interval:
            return False
        record = {
            "name": self.name,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "ts": now,
            **self.fields,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record, default=str))
            os.replace(tmp, self.path)
        except OSError:
            return False
        self.last = now
        return True

    def state(self, state: str, **fields) -> None:
        """A change of what the process does is written at once."""
        if self.fields.get("state") != state:
            self.beat(force=True, state=state, **fields)
        else:
            self.beat(state=state, **fields)


def heartbeat_read(name: str, *, directory: Path | None = None) -> dict | None:
    path = (directory or heartbeat_dir()) / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
