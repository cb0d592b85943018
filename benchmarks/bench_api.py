"""API benchmark: GET /api/v1/signals?limit=100 on PostgreSQL holding 100k signals, side by side
with a bare ASGI endpoint (benchmarks/bare_api.py) that runs the same SQL and encodes with orjson.

Creates a scratch database next to DATABASE_URL's (dropped at the end), migrates it, loads
signals with COPY, records the SQL statements Django runs for one request, starts both apps under
uvicorn with 2 worker processes each, then drives each with 50 concurrent keep-alive clients for
10 s, alternating Django and bare for two rounds (medians reported): wrk when installed (C, leaves
the CPU to the servers), else an async httpx load generator. Token-authenticated.

Last line: {"name": "api", "rps", "p50_ms", "p99_ms", "bare_rps", "bare_p99_ms",
"ratio_to_bare", ...}; ratio_to_bare = Django's throughput / the bare endpoint's (goal >= 0.5).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/autotrader \
        .venv/bin/python benchmarks/bench_api.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from strategies.setups.names import BUILTIN_SETUPS  # noqa: E402 (no Django imports)

PATH = "/api/v1/signals?limit=100"
SETUPS = BUILTIN_SETUPS
SYMBOLS = ("SPY", "QQQ", "SPX", "NDX", "TSLA", "AAPL", "IWM", "DIA")
OUTCOMES = ("generated", "risk_blocked", "approved", "dry_run", "submitted", "options_blocked")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_database_url(base_url: str, name: str) -> str:
    parts = urlsplit(re.sub(r"^postgres(ql)?\+psycopg2?://", "postgres://", base_url))
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def admin_dsn(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))


def database_recreate(url: str, name: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(admin_dsn(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def child_env(db_url: str) -> dict:
    env = dict(os.environ)
    env["DATABASE_URL"] = db_url
    env["DJANGO_DEBUG"] = "0"
    env["TIMESCALEDB"] = "0"
    env.setdefault("DB_POOL_MAX_SIZE", "8")  # ASGI: pooled connections (see settings)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def signals_rows(n: int, seed: int = 11):
    """Realistic journal rows: features, every check with its message, reasons."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 2, 14, 31, tzinfo=UTC)
    now = datetime.now(UTC).isoformat()
    per_minute = len(SETUPS) * len(SYMBOLS)
    for i in range(n):
        minute, slot = divmod(i, per_minute)
        setup = SETUPS[slot % len(SETUPS)]
        symbol = SYMBOLS[slot // len(SETUPS)]
        bar_ts = start + timedelta(minutes=minute)
        price = round(400 + rng.random() * 100, 2)
        outcome = rng.choice(OUTCOMES)
        features = {
            "ema_20": price - 0.3,
            "ema_50": price - 0.9,
            "ema_20_slope": 0.0004,
            "vwap": price - 0.2,
            "vwap_sigma": 0.8,
            "atr_14": 0.65,
            "rvol": round(rng.random() * 2, 3),
            "hod": price + 1.1,
            "lod": price - 2.3,
            "or_high": price - 0.5,
            "or_low": price - 1.7,
            "regime_score": 0.12,
            "rvol_method": "same_minute",
        }
        checks = [
            {"stage": "setup", "code": "SETUP_FIRED", "passed": True, "message": "cross up"},
            {"stage": "policy", "code": "POLICY_WINDOW", "passed": True, "message": "ok"},
            {"stage": "options", "code": "OPTIONS_VOLUME", "passed": True, "message": "ok"},
            {"stage": "risk", "code": "WINDOW", "passed": True, "message": "in window"},
            {
                "stage": "risk",
                "code": "MAX_CONCURRENT",
                "passed": outcome != "risk_blocked",
                "message": "3 open trades, limit 3",
            },
        ]
        reasons = ["MAX_CONCURRENT"] if outcome == "risk_blocked" else []
        yield (
            setup,
            symbol,
            {"SPX": "SPY", "NDX": "QQQ"}.get(symbol, symbol),
            bar_ts.isoformat(),
            "buy",
            round(rng.random(), 4),
            price,
            round(price - 0.8, 2),
            round(price + 0.65, 2),
            round(price + 1.3, 2),
            rng.randint(1, 200),
            "",
            json.dumps(features),
            json.dumps(checks),
            json.dumps(reasons),
            outcome,
            now,
            now,
        )


def seed_database(n: int) -> str:
    """Load n signals with COPY and return an API token (runs with the bench DATABASE_URL)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.authtoken.models import Token

    columns = (
        "setup, symbol, execution_symbol, bar_ts, side, score, entry_price, stop_price,"
        " target_one, target_two, qty, session_policy, features, checks, reasons, outcome,"
        " created_at, updated_at"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor().copy(f"COPY strategies_signal ({columns}) FROM STDIN") as copy:
            for row in signals_rows(n):
                copy.write_row(row)
    with connection.cursor() as cursor:  # steady state: autovacuum has set the visibility map
        cursor.execute("VACUUM ANALYZE strategies_signal")
    log(f"seeded {n} signals in {time.perf_counter() - started:.1f} s")
    user = get_user_model().objects.create_user("bench", password="bench-pass-not-used")
    return Token.objects.create(user=user).key


def record_sql(token: str, path: Path) -> None:
    """The SQL statements Django runs for one request of PATH, for the bare endpoint."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.get(PATH, HTTP_AUTHORIZATION=f"Token {token}")  # warm: first-request-only queries
    with CaptureQueriesContext(connection) as queries:
        response = client.get(PATH, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200, response.content[:300]
    statements = [q["sql"] for q in queries.captured_queries]
    assert "strategies_signal" in statements[-1], statements
    path.write_text(json.dumps(statements))
    log(f"recorded {len(statements)} SQL statements per request")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, token: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(base + PATH, headers={"Authorization": f"Token {token}"}, timeout=2)
            if r.status_code == 200:
                body = r.json()
                assert len(body["results"]) == 100, "expected a full page of 100 signals"
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError("the API server did not become ready")


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not match:
        raise ValueError(value)
    number, unit = float(match[1]), match[2]
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, token: str, *, connections: int, duration: int, threads: int) -> dict:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "10s",
            "-H",
            f"Authorization: Token {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    log(out)
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    total = int(re.search(r"(\d+) requests in", out)[1])
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": round(rps, 1),
        "p50_ms": round(_ms(pct["50"]), 2),
        "p90_ms": round(_ms(pct["90"]), 2),
        "p99_ms": round(_ms(pct["99"]), 2),
        "requests": total,
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "socket_errors": errors[0] if errors else "",
        "tool": "wrk",
    }


async def _httpx_load(url: str, token: str, *, connections: int, duration: int) -> dict:
    import httpx

    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Token {token}"}
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=10) as client:
        stop_at = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                r = await client.get(url)
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p90_ms": round(latencies[int(len(latencies) * 0.90) - 1], 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "requests": len(latencies),
        "non_2xx": failures,
        "tool": "httpx",
    }


@dataclass
class Server:
    base: str
    process: subprocess.Popen

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def start_server(app: str, env: dict, workers: int) -> Server:
    port = free_port()
    uvicorn = shutil.which("uvicorn", path=str(Path(sys.executable).parent)) or "uvicorn"
    process = subprocess.Popen(
        [
            uvicorn,
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    return Server(base=f"http://127.0.0.1:{port}", process=process)


def measure(tool: str, url: str, token: str, *, connections: int, duration: int) -> dict:
    if tool == "wrk":
        threads = 1 if connections == 1 else 2
        return run_wrk(url, token, connections=connections, duration=duration, threads=threads)
    return asyncio.run(_httpx_load(url, token, connections=connections, duration=duration))


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Medians over the rounds; the ratio from the medians of the same run."""

    def median(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[name]), 2)

    django_rps, bare_rps = median("django", "rps"), median("bare", "rps")
    return {
        "rps": django_rps,
        "p50_ms": median("django", "p50_ms"),
        "p99_ms": median("django", "p99_ms"),
        "bare_rps": bare_rps,
        "bare_p50_ms": median("bare", "p50_ms"),
        "bare_p99_ms": median("bare", "p99_ms"),
        "ratio_to_bare": round(django_rps / bare_rps, 3) if bare_rps else None,
        "non_2xx": sum(r["non_2xx"] for rs in runs.values() for r in rs),
        "rounds_rps": {name: [r["rps"] for r in rs] for name, rs in runs.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tool", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--db-name", default="autotrader_bench_api")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://", "postgresql+")):
        print(json.dumps({"name": "api", "skipped": "needs DATABASE_URL (PostgreSQL)"}))
        return 0
    db_url = bench_database_url(base_url, args.db_name)
    database_recreate(base_url, args.db_name)
    env = child_env(db_url)
    servers: dict = {}
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        seed = subprocess.run(
            [sys.executable, __file__, "--seed-only", str(args.signals)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        log(seed.stderr.strip())
        token = seed.stdout.strip().splitlines()[-1]
        sql_file = Path(tempfile.mkdtemp(prefix="bench-api-")) / "statements.json"
        subprocess.run(
            [sys.executable, __file__, "--record-sql", token, str(sql_file)],
            cwd=ROOT,
            env=env,
            check=True,
        )
        parts = urlsplit(db_url)
        bare_env = {
            **env,
            "BARE_DSN": urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, "")),
            "BARE_SQL_FILE": str(sql_file),
        }
        servers = {
            "django": start_server("autotrader_site.asgi:application", env, args.workers),
            "bare": start_server("benchmarks.bare_api:app", bare_env, args.workers),
        }
        for server in servers.values():
            wait_ready(server.base, token)
        tool = args.tool
        if tool == "auto":
            tool = "wrk" if shutil.which("wrk") else "httpx"
        load_before = os.getloadavg()
        runs: dict[str, list[dict]] = {"django": [], "bare": []}
        for server in servers.values():  # warm-up
            measure(tool, server.base + PATH, token, connections=args.connections, duration=2)
        for _ in range(args.rounds):
            for name, server in servers.items():
                runs[name].append(
                    measure(
                        tool,
                        server.base + PATH,
                        token,
                        connections=args.connections,
                        duration=args.duration,
                    )
                )
        load_after = os.getloadavg()
        single = measure(tool, servers["django"].base + PATH, token, connections=1, duration=5)
        result = summarise(runs)
        result["single_client_p50_ms"] = single["p50_ms"]
        result["tool"] = tool
        result["loadavg_1m_before"] = round(load_before[0], 2)
        result["loadavg_1m_after"] = round(load_after[0], 2)
    finally:
        for server in servers.values():
            server.stop()
        if not args.keep_db:
            database_recreate(base_url, args.db_name, drop_only=True)
    print(
        json.dumps(
            {
                "name": "api",
                **result,
                "connections": args.connections,
                "duration_s": args.duration,
                "signals": args.signals,
                "workers": args.workers,
                "rounds": args.rounds,
                "cpus": os.cpu_count(),
                "goal_ratio_to_bare": 0.5,
            }
        )
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--record-sql":
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotrader_site.settings")
        django.setup()
        record_sql(sys.argv[2], Path(sys.argv[3]))
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "--seed-only":
        token = seed_database(int(sys.argv[2]))
        print(token)
        sys.exit(0)
    sys.exit(main())
