"""Thin management commands around the strategy services."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from marketdata.services import bars_upsert
from tests.strategies import sequences
from tests.strategies.test_policies import EXAMPLE


def test_session_policies_check_prints_the_sessions():
    out = StringIO()
    call_command("session_policies_check", str(EXAMPLE), stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["OPEN", "LUNCH", "POWER"]
    assert "max_trades=1" in lines[1] and "etf_only=True" in lines[1]


def test_session_policies_check_fails_on_a_bad_file(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("sessions:\n  X:\n    time_window: ['10:00']\n")
    with pytest.raises(CommandError, match="session 'X': field 'time_window'"):
        call_command("session_policies_check", str(bad))


@pytest.mark.django_db
def test_signals_preview_command_prints_one_json_line_per_setup(settings):
    from autotrader_site.clock import MarketClock

    seq = sequences.ema_cross()
    bars_upsert(bars=seq.bars)
    MarketClock.set_replay_time(seq.bars[-1].ts)
    try:
        out = StringIO()
        call_command("signals_preview", "--symbols", "spy", stdout=out)
    finally:
        MarketClock.set_replay_time(None)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["setup"] for r in rows] == list(settings.ENABLED_SETUPS)
    assert {r["symbol"] for r in rows} == {"SPY"}
