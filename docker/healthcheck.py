"""Container healthchecks, standard library only (no Django start-up per probe).

    python docker/healthcheck.py [path]            the web process answers HTTP on its port
    python docker/healthcheck.py heartbeat NAME     a process without a port (beat, streamer,
                                                    account_stream) wrote its heartbeat lately

HTTP: the Host header is the first allowed host, so a production DJANGO_ALLOWED_HOSTS does not
turn the probe into a 400, and X-Forwarded-Proto keeps DJANGO_SECURE's redirect away. A 503
from the health endpoint still means the process serves (the endpoint reports degraded
dependencies, which a restart of web would not fix).

Heartbeat: `HEARTBEAT_DIR/NAME.json` (default STATE_DIR/heartbeats, see
autotrader_site/heartbeat.py) must be younger than HEARTBEAT_MAX_AGE_SEC (60) and not say
`stopped`. A `disabled` streamer (no key) is healthy: it has exited on purpose.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def _host() -> str:
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def http_check(path: str) -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8080')}{path}"
    request = urllib.request.Request(url, headers={"Host": _host(), "X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (fixed URL)
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1
    if status < 500 or status == 503:
        print(f"ok: {url} -> {status}")
        return 0
    print(f"unhealthy: {url} -> {status}")
    return 1


def heartbeat_directory() -> Path:
    explicit = os.environ.get("HEARTBEAT_DIR")
    if explicit:
        return Path(explicit)
    state = os.environ.get("STATE_DIR")
    if state:
        return Path(state) / "heartbeats"
    return Path(__file__).resolve().parent.parent / "state" / "heartbeats"


def heartbeat_check(name: str, *, now: float | None = None) -> int:
    path = heartbeat_directory() / f"{name}.json"
    max_age = float(os.environ.get("HEARTBEAT_MAX_AGE_SEC") or 60)
    try:
        record = json.loads(path.read_text())
        age = (now or time.time()) - float(record["ts"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"unhealthy: no heartbeat {path}: {exc}")
        return 1
    state = record.get("state", "?")
    if state == "disabled":
        print(f"ok: {name} disabled ({record.get('reason', '')})")
        return 0
    if age > max_age:
        print(f"unhealthy: {name} heartbeat {age:.0f} s old (> {max_age:.0f} s), state {state}")
        return 1
    if state == "stopped":
        print(f"unhealthy: {name} stopped")
        return 1
    print(f"ok: {name} {state}, heartbeat {age:.0f} s old")
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "heartbeat":
        if len(argv) != 2:
            print("usage: healthcheck.py heartbeat NAME")
            return 2
        return heartbeat_check(argv[1])
    return http_check(argv[0] if argv else "/api/v1/diag/health")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
