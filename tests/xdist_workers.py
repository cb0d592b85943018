"""Give each pytest-xdist worker its own Redis database and fault-scenario names.

Loaded with `-p tests.xdist_workers` (the Makefile does), so it runs before pytest-django reads
the settings: every test's autouse `cache.clear()` flushes the whole Redis database, and the
fault scenarios create a PostgreSQL database and use a Redis database by name, so two workers
sharing them would wipe each other's state. Worker gwN uses Redis db (base − N) for the cache,
Celery and Channels, FAULTS_REDIS_DB (7 + N) and FAULTS_DB_NAME `<name>_gwN`; the test database
itself already gets the `_gwN` suffix from pytest-django. Without xdist this does nothing.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")


def _redis_db_moved(url: str, offset: int) -> str:
    """The same Redis server, database (its own number − offset)."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    if base - offset < 0:
        raise RuntimeError(f"REDIS_URL {url!r}: too few Redis databases below {base} for worker")
    return urlunsplit(parts._replace(path=f"/{base - offset}"))


if _worker.startswith("gw"):
    _n = int(_worker[2:])
    if os.environ.get("REDIS_URL", "").startswith("redis://"):
        os.environ["REDIS_URL"] = _redis_db_moved(os.environ["REDIS_URL"], _n)
    os.environ["FAULTS_REDIS_DB"] = str(int(os.environ.get("FAULTS_REDIS_DB", "7")) + _n)
    _faults_db = os.environ.get("FAULTS_DB_NAME", "autotrader_faults")
    os.environ["FAULTS_DB_NAME"] = f"{_faults_db}_{_worker}"


# The fault scenarios start real workers, servers of their own and stacks on named databases; they
# run one after another in a single worker, beside the rest of the suite in the other, so two
# scenarios never load the machine at once. A module whose last test reads what its earlier tests
# recorded (module state) stays in one worker too.
_PLAIN_FAULT_FILES = {"test_api_security.py", "test_risk_properties.py"}  # no servers
_ONE_WORKER_MODULES = {"test_api_security.py"}


def xdist_group_of(nodeid: str) -> str | None:
    """The group a test belongs to (None: any worker), from its file alone."""
    path = PurePosixPath(nodeid.split("::", 1)[0])
    if path.parent.name == "faults" and path.name not in _PLAIN_FAULT_FILES:
        return "faults"
    if path.name in _ONE_WORKER_MODULES:
        return path.stem
    return None


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` by file rule. xdist's own loadgroup reads a "@group" suffix that its
    worker writes into `item._nodeid`; pytest 9 derives node ids from `item._id`, so that write
    is lost and the groups were split over both workers (seen: the fuzz report ran on gw1, the
    fuzz tests on gw0). Grouping here needs no node-id rewrite."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid) or nodeid

    return FileGroupScheduling(config, log)
