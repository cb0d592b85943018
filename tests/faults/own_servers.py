"""A PostgreSQL cluster and a Redis server of the scenario's own, on free ports, so a fault
scenario can restart them without touching the servers other sessions share.

    with OwnPostgres() as pg:          # initdb in a temp dir (as the postgres user when root)
        url = pg.url("autotrader")     # created on first use
        pg.restart()                   # pg_ctl restart -m fast: every connection is cut
    with OwnRedis() as rds:            # redis-server with an append-only file
        rds.restart()                  # SHUTDOWN (AOF fsynced), then the same port and data
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class OwnPostgres:
    def __init__(self) -> None:
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        self.bindir = Path(shutil.which("initdb") or "/usr/lib/postgresql/15/bin/initdb").parent
        self.restarts = 0

    @classmethod
    def attach(cls, spec: str) -> OwnPostgres:
        """The server another process started (`spec` = its `spec` property)."""
        root, port = spec.rsplit(":", 1)
        own = cls.__new__(cls)
        own.root, own.port, own.data = Path(root), int(port), Path(root) / "data"
        own.user = "postgres" if os.geteuid() == 0 else None
        own.bindir = Path(shutil.which("initdb") or "/usr/lib/postgresql/15/bin/initdb").parent
        own.restarts = 0
        return own

    @property
    def spec(self) -> str:
        return f"{self.root}:{self.port}"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr[-1000:]}")
        return result

    def start(self) -> OwnPostgres:
        if self.user:
            shutil.chown(self.root, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._ctl("start")
        return self

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            action,
            *extra,
        )
        if action != "stop":
            _wait_port(self.port)

    def url(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url_of("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_of(name)

    def url_of(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def restart(self) -> None:
        """A fast restart: the server goes away under every open connection and comes back."""
        self._ctl("restart", "-m", "fast")
        self.restarts += 1

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> OwnPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class OwnRedis:
    def __init__(self) -> None:
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="faults-redis-"))
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    @classmethod
    def attach(cls, spec: str) -> OwnRedis:
        """The server another process started (`spec` = its `spec` property)."""
        root, port = spec.rsplit(":", 1)
        own = cls.__new__(cls)
        own.root, own.port, own.proc, own.restarts = Path(root), int(port), None, 0
        return own

    @property
    def spec(self) -> str:
        return f"{self.root}:{self.port}"

    def _wait_down(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                return
            time.sleep(0.05)

    def start(self) -> OwnRedis:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port)
        return self

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def restart(self, *, down_sec: float = 1.0) -> None:
        """SHUTDOWN (the append-only file is fsynced), stay down `down_sec`, start again."""
        import redis

        with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it goes
            redis.Redis(port=self.port).shutdown(nosave=False)
        if self.proc is not None:
            self.proc.wait(30)
        self._wait_down()
        time.sleep(down_sec)
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        """Whichever process runs it now (a restart elsewhere starts a new one)."""
        import redis

        with contextlib.suppress(redis.RedisError):
            redis.Redis(port=self.port, socket_timeout=2).shutdown(nosave=True)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self._wait_down()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> OwnRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
