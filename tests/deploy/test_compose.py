"""The production stack files: Compose accepts them, and they pass only variables the
application actually reads."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests.deploy.compose_tools import (
    COMPOSE_FILE,
    ROOT,
    compose_command,
    env_example_variables,
    passed_variables,
    settings_variables,
    unknown_variables,
)

APP_SERVICES = ("web", "worker", "beat", "streamer", "account_stream", "flower")
STACK = ("db", "redis", "migrate", *APP_SERVICES, "prometheus", "grafana")


@pytest.fixture(scope="module")
def compose(tmp_path_factory):
    command, env = compose_command(tmp_path_factory.mktemp("compose"))
    # Interpolation must not depend on the developer's shell.
    for name in ("DB_USER", "DB_PASSWORD", "DB_NAME", "PORT", "ADMIN_USERNAME", "ADMIN_PASSWORD"):
        env.pop(name, None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*command, "-f", str(COMPOSE_FILE), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


@pytest.fixture(scope="module")
def resolved(compose):
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_config_is_valid(compose):
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_rejects_a_broken_file(compose, tmp_path):
    """The validity check above can fail: a service with an unknown key is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  web:\n    image: x\n    restartt: always\n")
    result = compose("-f", str(broken), "config", "-q")
    assert result.returncode != 0
    assert "restartt" in result.stderr


def test_every_passed_variable_is_a_setting():
    known = settings_variables() | env_example_variables()
    assert "DATABASE_URL" in known and "REDIS_URL" in known  # the scan reads settings.py
    unknown = unknown_variables(COMPOSE_FILE.read_text(), known)
    assert not unknown, f"compose passes variables no setting reads: {unknown}"


def test_variable_check_flags_an_unknown_variable():
    text = (
        "services:\n  web:\n    image: autotrader:latest\n    environment:\n"
        "      REDIS_URL: redis://redis:6379/0\n      TYPO_SETTING: '1'\n"
        "    ports: ['${NOT_A_SETTING:-80}:8080']\n"
        "  db:\n    image: postgres\n    environment:\n      POSTGRES_DB: x\n"
    )
    passed = passed_variables(text)
    assert set(passed) == {"REDIS_URL", "TYPO_SETTING", "NOT_A_SETTING"}
    assert set(unknown_variables(text, settings_variables())) == {"TYPO_SETTING", "NOT_A_SETTING"}


def test_container_paths_win_over_a_local_env_file(resolved):
    """The app reads ../.env too; a path meant for a checkout (./state) must not reach the
    containers, so the compose file pins every such variable."""
    example = (ROOT / ".env.example").read_text() if (ROOT / ".env.example").is_file() else ""
    local_paths = set(re.findall(r"^([A-Z][A-Z0-9_]*)=\./", example, re.MULTILINE))
    local_paths |= {"STATE_DIR", "STATIC_ROOT", "EVENTS_JOURNAL"}
    for name in APP_SERVICES:
        environment = resolved["services"][name]["environment"]
        for variable in sorted(local_paths):
            assert environment.get(variable, "").startswith("/srv/"), (name, variable)


def test_stack_has_every_service_with_restart_and_health(resolved):
    services = resolved["services"]
    assert set(STACK) <= set(services)
    for name in STACK:
        # the streamer exits 0 when it has no (valid) key: restarting it would only loop
        expected = {"migrate": "no", "streamer": "on-failure"}.get(name, "unless-stopped")
        assert services[name]["restart"] == expected, name
    for name in (
        "db",
        "redis",
        "web",
        "worker",
        "beat",
        "streamer",
        "account_stream",
        "flower",
        "prometheus",
    ):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["grafana"].get("healthcheck", {}).get("test")
    for name in ("beat", "streamer"):
        assert services[name]["healthcheck"]["test"][-2:] == ["heartbeat", name]
    for name in APP_SERVICES:  # SIGTERM stops each within SHUTDOWN_DEADLINE_SEC; room to spare
        assert services[name].get("stop_grace_period", "10s") in ("10s", "10000000000"), name
    for name in APP_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["db"]["condition"] == "service_healthy", name
        targets = {v["target"] for v in services[name]["volumes"]}
        assert "/srv/state" in targets, name
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert "@db:5432/" in services[name]["environment"]["DATABASE_URL"]
    assert "migrate --noinput" in " ".join(services["migrate"]["command"])
    db_volumes = {v["target"]: v["type"] for v in services["db"]["volumes"]}
    assert db_volumes == {"/var/lib/postgresql/data": "volume"}
    assert services["db"]["image"].startswith("timescale/timescaledb:2.")


def test_prometheus_scrapes_web_and_celery():
    config = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert {"web:8080", "flower:5555"} <= targets


def test_grafana_provisions_the_datasource_and_dashboards(resolved):
    mounts = {v["target"]: v.get("source", "") for v in resolved["services"]["grafana"]["volumes"]}
    assert mounts["/etc/grafana/provisioning"].endswith("docker/grafana/provisioning")
    assert mounts["/etc/grafana/dashboards"].endswith("docker/grafana/dashboards")
    provider = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/dashboards/autotrader.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    datasource = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def _procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def test_procfile_and_compose_run_the_same_processes(resolved):
    procfile = _procfile()
    assert list(procfile) == list(APP_SERVICES)
    services = resolved["services"]
    for name in ("worker", "beat", "streamer", "account_stream", "flower"):
        assert services[name]["command"] == procfile[name].split(), name
    web = " ".join(services["web"]["command"]).replace("$$", "$")
    assert procfile["web"] in web


def test_dockerfile_is_slim_pinned_and_non_root():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert "pip install -r requirements/base.txt" in text
    for line in (ROOT / "requirements" / "base.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            assert "==" in line, f"requirements/base.txt: {line!r} is not pinned"
