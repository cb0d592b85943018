"""Session policies: every field enforced, a bad file named precisely at start-up."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time, timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from marketdata.services import bars_upsert
from strategies.models import FeatureSnapshot, Signal
from strategies.policies import PolicyBook, SessionPolicy, policies_load, policy_checks
from strategies.services import evaluate_bar
from tests.strategies import sequences
from tests.strategies.conftest import ET, et

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "session_policies.example.yaml"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    return path


def failed(checks):
    return [c["code"] for c in checks if not c["passed"]]


def test_the_example_file_loads():
    book = policies_load(EXAMPLE)
    assert [p.name for p in book.sessions] == ["OPEN", "LUNCH", "POWER"]
    lunch = book.sessions[1]
    assert lunch.allow_setups == {"SIGMA_FADE"} and lunch.etf_only and lunch.max_trades == 1
    assert book.active(et(date(2024, 3, 5), "11:30")).name == "LUNCH"
    assert book.active(et(date(2024, 3, 5), "11:29")).name == "OPEN"
    assert book.active(et(date(2024, 3, 5), "15:55")) is None


BAD = [
    ("sessions: [oops", None, None, "not valid YAML"),
    (
        "sessions:\n  OPEN:\n    time_window: ['09:30', '11:30']\n    rvol: 1\n",
        "OPEN",
        "rvol",
        "unknown field",
    ),
    ("sessions:\n  OPEN:\n    time_window: ['9h30', '11:30']\n", "OPEN", "time_window", "HH:MM"),
    ("sessions:\n  OPEN:\n    time_window: ['11:30', '09:30']\n", "OPEN", "time_window", "before"),
    (
        "sessions:\n  OPEN:\n    time_window: ['09:30', '11:30']\n    allow_setups: [VWAP]\n",
        "OPEN",
        "allow_setups",
        "VWAP",
    ),
    (
        "sessions:\n  OPEN:\n    time_window: ['09:30', '11:30']\n    rvol_min: high\n",
        "OPEN",
        "rvol_min",
        "not a number",
    ),
    (
        "sessions:\n  OPEN:\n    time_window: ['09:30', '11:30']\n    max_trades: -1\n",
        "OPEN",
        "max_trades",
        ">= 0",
    ),
    (
        "sessions:\n  OPEN:\n    time_window: ['09:30', '11:30']\n    time_stop_sec: 1.5\n",
        "OPEN",
        "time_stop_sec",
        "integer",
    ),
    (
        "sessions:\n  OPEN:\n    time_window: ['09:30', '11:30']\n    etf_only: maybe\n",
        "OPEN",
        "etf_only",
        "true/false",
    ),
    (
        "sessions:\n  OPEN:\n    time_window: ['09:30', '11:30']\n"
        "    ema20_slope_min: 0.2\n    ema20_slope_max: 0.1\n",
        "OPEN",
        "ema20_slope_min",
        "greater",
    ),
    (
        "sessions:\n  A:\n    time_window: ['09:30', '11:30']\n"
        "  B:\n    time_window: ['11:00', '12:00']\n",
        "B",
        "time_window",
        "overlaps",
    ),
    (
        "timezone: Mars/Olympus\nsessions:\n  A:\n    time_window: ['09:30', '11:30']\n",
        None,
        "timezone",
        "time zone",
    ),
    ("sessions: {}\n", None, "sessions", "non-empty"),
]


@pytest.mark.parametrize(("text", "session", "field", "problem"), BAD)
def test_bad_file_names_file_session_and_field(tmp_path, text, session, field, problem):
    path = write(tmp_path, text)
    with pytest.raises(ImproperlyConfigured) as err:
        policies_load(path)
    message = str(err.value)
    assert str(path) in message and problem in message
    if session:
        assert f"session {session!r}" in message
    if field:
        assert f"field {field!r}" in message


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        policies_load(tmp_path / "nope.yaml")


def test_start_up_fails_on_a_bad_policy_file(tmp_path, settings):
    settings.SESSION_POLICY_FILE = str(write(tmp_path, "sessions:\n  X:\n    time_window: [1]\n"))
    with pytest.raises(ImproperlyConfigured, match="session 'X': field 'time_window'"):
        apps.get_app_config("strategies").ready()


POLICY = SessionPolicy(name="OPEN", start=time(9, 30), end=time(11, 30))


def checks(policy, setup="EMA_CROSS", rvol=1.0, slope=0.001, exec_symbol="SPY", trades=0):
    return policy_checks(
        policy,
        setup=setup,
        features={"rvol": rvol, "ema_20_slope": slope},
        execution_symbol=exec_symbol,
        etf_symbols=frozenset({"SPY", "QQQ"}),
        trades_in_window=trades,
    )


def with_(**kw) -> SessionPolicy:
    return replace(POLICY, **kw)


def test_allow_and_ban_lists():
    assert failed(checks(with_(allow_setups=frozenset({"ORB"})))) == ["POLICY_SETUP_NOT_ALLOWED"]
    assert failed(checks(with_(allow_setups=frozenset({"EMA_CROSS"})))) == []
    assert failed(checks(with_(ban_setups=frozenset({"EMA_CROSS"})))) == ["POLICY_SETUP_BANNED"]


def test_rvol_min():
    assert failed(checks(with_(rvol_min=1.2), rvol=1.19)) == ["POLICY_RVOL_MIN"]
    assert failed(checks(with_(rvol_min=1.2), rvol=1.2)) == []
    assert failed(checks(with_(rvol_min=1.2), rvol=float("nan"))) == ["POLICY_RVOL_MIN"]


def test_slope_bounds():
    assert failed(checks(with_(ema20_slope_min=0.002), slope=0.001)) == ["POLICY_SLOPE_MIN"]
    assert failed(checks(with_(ema20_slope_max=0.0005), slope=0.001)) == ["POLICY_SLOPE_MAX"]
    assert failed(checks(with_(ema20_slope_min=0.0, ema20_slope_max=0.002), slope=0.001)) == []


def test_max_trades_and_etf_only():
    assert failed(checks(with_(max_trades=2), trades=1)) == []
    assert failed(checks(with_(max_trades=2), trades=2)) == ["POLICY_MAX_TRADES"]
    assert failed(checks(with_(etf_only=True), exec_symbol="TSLA")) == ["POLICY_ETF_ONLY"]
    assert failed(checks(with_(etf_only=True), exec_symbol="SPY")) == []


# --- through the live path ---------------------------------------------------------------------
POLICY_YAML = """
timezone: America/New_York
sessions:
  OPEN:
    time_window: ["09:30", "11:30"]
{fields}
"""


def _evaluate_cross(tmp_path, settings, fields: str, symbol="SPY"):
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    settings.SESSION_POLICY_FILE = str(write(tmp_path, POLICY_YAML.format(fields=fields)))
    seq = sequences.ema_cross(symbol)
    bars_upsert(bars=seq.bars)
    out = []
    for b in seq.bars:
        out += evaluate_bar(symbol=symbol, bar_ts=b.ts)
    assert [s.bar_ts for s in out] == [seq.expected]
    return out[0]


@pytest.mark.django_db
def test_policy_allows_and_sets_time_stop(tmp_path, settings):
    s = _evaluate_cross(tmp_path, settings, "    allow_setups: [EMA_CROSS]\n    time_stop_sec: 90")
    assert s.outcome == "generated" and s.session_policy == "OPEN"
    assert s.features["time_stop_sec"] == 90
    assert s.features["policy_window"] == ["09:30:00", "11:30:00"]


@pytest.mark.django_db
def test_policy_blocks_a_banned_setup_with_its_code(tmp_path, settings):
    s = _evaluate_cross(tmp_path, settings, "    ban_setups: [EMA_CROSS]")
    assert s.outcome == "policy_blocked" and s.reasons == ["POLICY_SETUP_BANNED"]


@pytest.mark.django_db
def test_policy_blocks_low_rvol(tmp_path, settings):
    s = _evaluate_cross(tmp_path, settings, "    rvol_min: 1.5")
    assert s.outcome == "policy_blocked" and s.reasons == ["POLICY_RVOL_MIN"]


@pytest.mark.django_db
def test_policy_etf_only_blocks_a_stock(tmp_path, settings):
    s = _evaluate_cross(tmp_path, settings, "    etf_only: true", symbol="TSLA")
    assert s.outcome == "policy_blocked" and s.reasons == ["POLICY_ETF_ONLY"]


@pytest.mark.django_db
def test_max_trades_counts_traded_signals_of_the_window(tmp_path, settings):
    day = sequences.SESSIONS[0]
    for i, outcome in enumerate(["dry_run", "generated", "risk_blocked"]):
        Signal.objects.create(
            setup="ORB",
            symbol="QQQ",
            execution_symbol="QQQ",
            bar_ts=et(day, "09:45") + timedelta(minutes=i),
            outcome=outcome,
        )
    s = _evaluate_cross(tmp_path, settings, "    max_trades: 2")
    assert s.outcome == "generated"
    Signal.objects.filter(setup="ORB", outcome="generated").update(outcome="submitted")
    Signal.objects.filter(setup="EMA_CROSS").delete()
    FeatureSnapshot.objects.all().delete()
    seq = sequences.ema_cross()
    out = [x for b in seq.bars for x in evaluate_bar(symbol="SPY", bar_ts=b.ts)]
    assert out[0].outcome == "policy_blocked" and out[0].reasons == ["POLICY_MAX_TRADES"]


@pytest.mark.django_db
def test_outside_every_window_is_blocked(tmp_path, settings):
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    text = "sessions:\n  LATE:\n    time_window: ['14:00', '15:00']\n"
    settings.SESSION_POLICY_FILE = str(write(tmp_path, text))
    seq = sequences.ema_cross()
    bars_upsert(bars=seq.bars)
    out = [x for b in seq.bars for x in evaluate_bar(symbol="SPY", bar_ts=b.ts)]
    assert out[0].outcome == "policy_blocked" and out[0].reasons == ["POLICY_NO_SESSION"]


def test_active_window_uses_the_file_timezone():
    book = PolicyBook(path="x", timezone=ET, sessions=(POLICY,))
    assert book.active(et(date(2024, 3, 11), "09:30")) is POLICY  # first day of EDT
    assert book.active(et(date(2024, 3, 8), "09:29")) is None
