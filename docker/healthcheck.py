"""Container healthcheck for the web process: does it answer HTTP on its port?

Run as `python docker/healthcheck.py [path]`. Uses only the standard library so it costs no
Django start-up. The Host header is the first allowed host, so a production DJANGO_ALLOWED_HOSTS
does not turn the probe into a 400, and X-Forwarded-Proto keeps DJANGO_SECURE's redirect away.
A 503 from the health endpoint still means the process serves (the endpoint reports degraded
dependencies, which a restart of web would not fix).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def _host() -> str:
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/api/v1/diag/health"
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


if __name__ == "__main__":
    sys.exit(main())
