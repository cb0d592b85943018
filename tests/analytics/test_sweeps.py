from datetime import date

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analytics.bars import bars_frame_from_data
from analytics.models import BacktestRun, SweepRun
from analytics.sweeps import GridError, grid_combinations, grid_parse
from marketdata.replay import synthetic_sessions


def test_grid_parse_uses_the_settings_types():
    grid = grid_parse(["RISK_STOP_ATR_MULTIPLIER=1.0,1.5", "TRADE_TIMEOUT_MIN=20,45"])
    assert grid == {"RISK_STOP_ATR_MULTIPLIER": [1.0, 1.5], "TRADE_TIMEOUT_MIN": [20, 45]}
    assert grid_parse(["RISK_PER_TRADE_USD=50,100.5"]) == {"RISK_PER_TRADE_USD": ["50", "100.5"]}
    assert len(grid_combinations(grid)) == 4
    assert grid_combinations(grid)[1] == {"RISK_STOP_ATR_MULTIPLIER": 1.0, "TRADE_TIMEOUT_MIN": 45}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("NOT_A_SETTING=1", "not a setting"),
        ("TRADE_TIMEOUT_MIN=ten", "not a valid int"),
        ("TRADE_TIMEOUT_MIN", "NAME=value"),
        ("TRADE_TIMEOUT_MIN=", "NAME=value"),
    ],
)
def test_grid_parse_names_the_bad_axis(spec, message):
    with pytest.raises(GridError, match=message):
        grid_parse([spec])


@pytest.mark.django_db
def test_sweep_fans_out_stores_every_run_and_summarises(tmp_path, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    frame = bars_frame_from_data(
        synthetic_sessions(symbol="SPY", sessions=3, seed=8, end=date(2024, 3, 15))
    )
    csv = tmp_path / "spy.csv"
    out = frame[["open", "high", "low", "close", "volume"]].copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(csv, index_label="ts")
    call_command(
        "sweep",
        grid=["RISK_STOP_ATR_MULTIPLIER=1.0,2.0", "TRADE_TIMEOUT_MIN=10,45"],
        data=str(csv),
    )
    sweep = SweepRun.objects.get()
    assert sweep.status == "done" and sweep.finished_at is not None
    runs = BacktestRun.objects.filter(sweep=sweep)
    assert runs.count() == 4
    rows = sweep.summary["rows"]
    assert len(rows) == 4 and sweep.summary["failed"] == 0
    pnls = [r["stats"]["total_pnl"] for r in rows]
    assert pnls == sorted(pnls, reverse=True)  # best first
    # the axes really change the runs: the stop multiplier moves the stored stops
    stops = {r.params["overrides"]["RISK_STOP_ATR_MULTIPLIER"]: r.params["stop_atr"] for r in runs}
    assert stops == {1.0: 1.0, 2.0: 2.0}
    assert len({r["stats"]["total_pnl"] for r in rows}) > 1
    # overfitting odds of the sweep: every combination's P&L per session, summing to its total
    for row in rows:
        assert sum(row["daily"].values()) == pytest.approx(row["stats"]["total_pnl"], abs=0.01)
        assert len(row["daily"]) == 3
    over = sweep.summary["overfitting"]
    assert over["candidates"] == 4 and over["sessions"] == 3
    assert over["deflated_sharpe"]["trials"] == 4
    assert over["pbo"]["reason"] == "needs >= 4 periods"  # three sessions: too few to split


@pytest.mark.django_db
def test_sweep_command_rejects_bad_grids():
    with pytest.raises(CommandError, match="at least one"):
        call_command("sweep")
    with pytest.raises(CommandError, match="not a setting"):
        call_command("sweep", grid=["NOPE=1"])
