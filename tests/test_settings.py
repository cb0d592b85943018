"""Settings: every variable documented, the spec's names kept, bad values stop start-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED

SETTINGS_SOURCE = (ROOT / "autotrader_site" / "settings.py").read_text()
READ_NAMES = set(
    re.findall(
        r'env_(?:str|bool|int|float|decimal|time|symbols|symbol_map|choice)\(\s*"([A-Z_0-9]+)"',
        SETTINGS_SOURCE,
    )
) | set(re.findall(r'env\.list\("([A-Z_0-9]+)"', SETTINGS_SOURCE))
EXAMPLE_NAMES = set(re.findall(r"^([A-Z_0-9]+)=", (ROOT / ".env.example").read_text(), flags=re.M))


def _start(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in env_overrides}
    env.update(env_overrides)
    env["AUTOTRADER_ENV_FILE"] = "/nonexistent"
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_setting_is_documented_in_env_example():
    assert len(READ_NAMES) > 100
    assert sorted(READ_NAMES - EXAMPLE_NAMES) == []


def test_spec_variables_exist_under_their_names():
    spec = SHARED / "spec" / "env.example"
    if not spec.exists():
        pytest.skip("spec env.example not present outside the workspace")
    spec_names = set(re.findall(r"^([A-Z_0-9]+)=", spec.read_text(), flags=re.M))
    assert sorted(spec_names - READ_NAMES) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RISK_MAX_CONCURRENT", "three"),
        ("PARTIAL_EXIT_PCT", "1.5"),
        ("TRADING_WINDOW_START", "9h31"),
        ("DRY_RUN", "maybe"),
        ("SYMBOL_EXECUTION_MAP", "SPX-SPY"),
        ("TRADIER_ENV", "live"),
        ("ENABLED_SETUPS", "EMA_CROSS,MOON_SHOT"),
        ("DATABASE_URL", "mysql://x@y/z"),
    ],
)
def test_invalid_setting_stops_startup_naming_it(name, value):
    result = _start({name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.splitlines()[-1]


def test_live_orders_need_credentials():
    result = _start({"DRY_RUN": "0", "TRADIER_ACCESS_TOKEN": ""})
    assert result.returncode != 0
    assert "TRADIER_ACCESS_TOKEN" in result.stderr.splitlines()[-1]


def test_spec_style_database_url_is_accepted():
    result = _start({"DATABASE_URL": "postgresql+psycopg2://u:p@db:5432/autotrader"})
    assert result.returncode == 0, result.stderr


def test_readme_configuration_table_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_0-9]+)` \|", readme, flags=re.M))
    assert sorted(EXAMPLE_NAMES - documented) == []
