"""`make faults`: every fault scenario at the issue's full sizes (FAULTS_FULL=1), on a database
of its own (FAULTS_DB_NAME, default autotrader_faults, created and migrated here) and Redis db
FAULTS_REDIS_DB (default 7); the PostgreSQL and Redis restart scenarios start servers of their
own. Progress goes to stderr; the LAST line of stdout is one JSON object: `counts` (every loss,
duplicate, orphan, mismatch, partial bar and mislabelled signal, named by what it counts; all
0 is the goal, `all_zero` says so), then each scenario's figures. `--only stream,broker` runs
a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

os.environ.setdefault("FAULTS_FULL", "1")
# The fakes answer hundreds of requests a second; the Tradier request budget would pace every
# scenario (and the workers it starts) to real Tradier's 60 calls a minute, as under pytest it
# does not (tests/conftest.py): a 1,000-flow broker run took 12 s a flow, the crash run's last
# worker could not finish its flows before the driver's deadline. The budget has its own tests.
os.environ.setdefault("TRADIER_BUDGET_ENABLED", "0")


_main_database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/autotrader")


def _setup() -> None:
    from tests.faults.crash_faults import database_ensure, faults_urls

    db_url, redis_url = faults_urls()
    database_ensure(db_url)
    os.environ["DATABASE_URL"] = db_url
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _clean() -> None:
    from django.apps import apps
    from django.db import connection

    from tests.faults.crash_faults import TABLES_MODELS

    models = (*TABLES_MODELS, "marketdata.Bar", "marketdata.Tick")
    tables = []
    for label in models:
        try:
            tables.append(apps.get_model(label)._meta.db_table)
        except LookupError:
            continue
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def _n(name: str, small: int, full: int) -> int:
    """The size: FAULTS_<NAME>=N overrides (a shorter run on a loaded machine), else the
    small/full default."""
    from tests.faults.sizes import size

    raw = os.environ.get(f"FAULTS_{name.upper()}")
    return int(raw) if raw else size(small, full)


def _stream() -> dict:
    from tests.faults.stream_faults import run_stream_faults

    return run_stream_faults(
        minutes=_n("stream_minutes", 20, 240),
        malformed=_n("stream_malformed", 300, 10_000),
        drop_every=_n("stream_drop_every", 30, 60),
    )


def _concurrency() -> dict:
    from tests.faults.concurrency_faults import run_concurrency

    return run_concurrency(bursts=_n("bursts", 12, 625))  # 16 decisions per burst


def _broker() -> dict:
    from tests.faults.broker_faults import run_broker_faults

    # late landings: booked 0.25 s after arriving, the client gives up after 0.15 s
    return run_broker_faults(
        flows=_n("broker_flows", 12, 1000), fault_rate=0.3, late_landing_sec=0.25
    )


def _crash() -> dict:
    from tests.faults.crash_faults import run_crash_faults

    flows, kills = _n("crash_flows", 16, 1000), _n("crash_kills", 2, 40)
    return run_crash_faults(flows=flows, kills=kills, all_trade=True)  # every flow can trade


def _database() -> dict:
    from tests.faults.db_faults import run_db_faults

    return run_db_faults(flows=_n("db_flows", 20, 150), kills=_n("db_kills", 1, 6))


def _pg_restart() -> dict:
    from tests.faults.db_faults import run_db_faults

    return run_db_faults(flows=_n("pg_restart_flows", 12, 150), kills=0, restart=True)


def _redis_restart() -> dict:
    from tests.faults.db_faults import run_db_faults

    return run_db_faults(flows=_n("redis_restart_flows", 12, 150), kills=0, redis_restart=True)


def _soak() -> dict:
    from tests.faults.soak import run_soak

    return run_soak(
        minutes=_n("soak_minutes", 30, 390),
        kills=_n("soak_kills", 2, 8),
        db_kills=_n("soak_db_kills", 1, 4),
        redis_restarts=_n("soak_redis_restarts", 1, 1),
        sec_per_minute=float(os.environ.get("FAULTS_SOAK_SEC_PER_MINUTE") or 0.5),
    )


def _pytest_counts(path: str, env: dict) -> tuple[dict, str]:
    import re
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", path, "-q", "-p", "no:cacheprovider", "-W", "ignore"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", tail)}
    return counts, tail


def _shutdown() -> dict:
    """Every long-running process and state stopped by SIGTERM (tests/faults/test_sigterm.py)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = _main_database_url
    own = os.environ.get("FAULTS_DB_NAME", "autotrader_faults")
    env.setdefault("TEST_DB_NAME", f"test_{own}_sigterm")  # not shared with another run
    counts, tail = _pytest_counts("tests/faults/test_sigterm.py", env)
    return {**counts, "summary": tail[-200:]}


def _api() -> dict:
    """The per-role schemathesis fuzz (pytest), all operations and roles."""
    import re
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["DATABASE_URL"] = os.environ.get("FAULTS_API_DATABASE_URL", _main_database_url)
    env.setdefault("TEST_DB_NAME", "test_at_faults_api")
    env["FAULTS_API_EXAMPLES"] = str(_n("api_examples", 1, 50))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/faults/test_api_security.py",
            "-q",
            "-s",
            "-p",
            "no:logging",
            "-W",
            "ignore",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", tail)}
    found = re.search(r"schemathesis conformance findings: (\{.*\})", proc.stdout)
    return {
        "examples_per_operation": int(env["FAULTS_API_EXAMPLES"]),
        "roles": ["anonymous", "read-only", "trading"],
        **counts,
        "conformance_findings": found.group(1) if found else "",
        "summary": tail[-200:],
    }


SCENARIOS = {
    "broker": _broker,
    "concurrency": _concurrency,
    "stream": _stream,
    "crash": _crash,
    "database": _database,
    "pg_restart": _pg_restart,
    "redis_restart": _redis_restart,
    "soak": _soak,
    "shutdown": _shutdown,
    "api": _api,
}

_RECOVERY = {
    "flows_lost": "flows_lost",
    "flows_lost_stale": "flows_stale_by_scan",  # found by the scan too late to trade
    "signals_mislabelled": "signals_mislabelled",
    "fills_lost": "fills_lost",
    "orders_orphan": "orders_orphan",
    "orders_duplicate": "orders_duplicate",
    "positions_mismatch": "positions_mismatch",
    "recoveries_lost": "not_recovered",
}
# count key in the summary → the scenario's own figure; every one should be 0
COUNTS = {
    "stream": {
        "bars_lost": "bars_lost",
        "bars_duplicate": "bars_duplicate",
        "bars_partial": "bars_partial",
        "bars_provisional_left": "bars_provisional_left",
        "streams_crashed": "crashes",
    },
    "broker": {
        "orders_lost": "lost_orders",
        "orders_orphan": "unsettled_orders",
        "orders_duplicate": "doubled_orders",
        "orders_mismatch": "state_mismatches",
        "positions_mismatch": "position_mismatches",
        "bracket_legs_orphan": "unlinked_bracket_legs",
        "stops_duplicate": "trades_with_two_stops",
        "flows_crashed": "errors",
    },
    "crash": {
        "flows_lost": "unfinished_flows",
        "entries_lost": "entries_dropped_by_crash",
        "signals_mislabelled": "signals_mislabelled",
        "orders_orphan": "orphan_orders",
        "orders_duplicate": "duplicate_orders",
        "orders_mismatch": "state_mismatches",
        "positions_mismatch": "position_mismatches",
    },
    "concurrency": {"limits_breached": "breaches_total", "deciders_crashed": "errors"},
    "database": _RECOVERY,
    "pg_restart": _RECOVERY,
    "redis_restart": _RECOVERY,
    "soak": {
        "flows_lost": "flows_lost",
        "flows_lost_stale": "flows_lost_stale",
        "orders_duplicate": "orders_duplicate",
        "orders_orphan": "orders_orphan",
        "orders_mismatch": "orders_mismatch",
        "positions_mismatch": "positions_mismatch",
        "fills_lost": "fills_lost",
        "signals_mislabelled": "signals_mislabelled",
        "bars_partial": "bars_partial",
        "bars_lost": "bars_lost",
        "bars_duplicate": "bars_duplicate",
        "bars_provisional_left": "bars_provisional_left",
    },
    "shutdown": {"stops_late_or_lossy": "failed"},
    "api": {"api_checks_failed": "failed"},
}


def counts_of(figures: dict) -> dict:
    """`<scenario>_<what>_<kind>` → count, for every scenario that ran (a scenario that could
    not run counts as one `<scenario>_runs_lost`)."""
    out = {}
    for scenario, keys in COUNTS.items():
        got = figures.get(scenario)
        if got is None:
            continue
        if "error" in got:
            out[f"{scenario}_runs_lost"] = 1
            continue
        for name, key in keys.items():
            out[f"{scenario}_{name}"] = int(got.get(key) or 0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(SCENARIOS))
    args = parser.parse_args()
    _setup()
    figures: dict = {"name": "faults", "full": os.environ.get("FAULTS_FULL") == "1"}
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        started = time.monotonic()
        print(f"faults: {name} ...", file=sys.stderr, flush=True)
        try:
            from django.db import connections

            connections.close_all()  # the database scenario kills backends of this database
            _clean()
            figures[name] = SCENARIOS[name]()
        except Exception as exc:  # a scenario that cannot run is a figure too
            traceback.print_exc()
            figures[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        print(
            f"faults: {name} done in {time.monotonic() - started:.0f}s: {figures[name]}",
            file=sys.stderr,
            flush=True,
        )
    counts = counts_of(figures)
    summary = {
        "name": figures.pop("name"),
        "full": figures.pop("full"),
        "all_zero": not any(counts.values()),
        "counts": counts,
        **figures,
    }
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
