"""Walk-forward: fold plans and the report worked by hand; one real run over the shared SPY
sessions in-process (the run over a real Celery worker: test_walkforward_acceptance.py)."""

import json
from datetime import date, timedelta

import pytest

from analytics.walkforward import (
    Fold,
    WalkForwardError,
    WalkForwardPlan,
    candidates_make,
    folds_plan,
    parameter_stability,
    walkforward_start,
    walkforward_summarize,
)

DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(10)]


def test_rolling_folds_slide_by_the_test_window():
    folds = folds_plan(DAYS, train=4, test=2)
    assert [(f.train[0].day, f.train[-1].day, f.test[0].day, f.test[-1].day) for f in folds] == [
        (1, 4, 5, 6),
        (3, 6, 7, 8),
        (5, 8, 9, 10),
    ]
    assert all(len(f.train) == 4 and len(f.test) == 2 for f in folds)


def test_anchored_folds_grow_from_the_first_session():
    folds = folds_plan(DAYS, train=4, test=3, anchored=True)
    assert [(len(f.train), f.train[0].day, f.test[0].day) for f in folds] == [(4, 1, 5), (7, 1, 8)]


def test_a_step_shorter_than_the_test_window_overlaps_tests():
    folds = folds_plan(DAYS, train=6, test=2, step=1)
    assert [f.test[0].day for f in folds] == [7, 8, 9]


def test_too_few_sessions_is_a_clear_error():
    with pytest.raises(WalkForwardError, match="too few"):
        folds_plan(DAYS[:5], train=4, test=2)


def test_a_random_search_draws_distinct_candidates_of_the_grid_reproducibly():
    grid = {"A": [1, 2, 3], "B": [1, 2, 3], "C": [1, 2, 3]}
    assert len(candidates_make(grid)) == 27
    one = candidates_make(grid, search=5, seed=4)
    assert one == candidates_make(grid, search=5, seed=4)
    assert len({tuple(c.values()) for c in one}) == 5


def _row(fold, x, is_pnl, oos_pnl, daily):
    def part(pnl, n):
        return {"trades": 2, "total_pnl": pnl, "expectancy": pnl / 2,
                "pnl_per_session": pnl / n, "sharpe": 0.0, "sessions": n}  # fmt: skip

    return {"fold": fold, "overrides": {"X": x}, "in_sample": part(is_pnl, 2),
            "out_of_sample": part(oos_pnl, 1), "daily": daily}  # fmt: skip


def test_the_report_trades_the_in_sample_best_out_of_sample_by_hand():
    d = [f"2024-01-0{i}" for i in range(1, 5)]
    folds = [Fold(0, (), ()).as_dict() | {"train": d[0:2], "test": d[2:3]},
             {"index": 1, "train": d[1:3], "test": d[3:4]}]  # fmt: skip
    candidates = [{"X": 1}, {"X": 2}, {"X": 3}]
    rows = [
        # fold 0: X=2 wins in sample (30) and is 2nd of 3 out of sample (-5 vs 4, -9)
        _row(0, 1, 10.0, 4.0, {d[0]: 4.0, d[1]: 6.0, d[2]: 4.0}),
        _row(0, 2, 30.0, -5.0, {d[0]: 20.0, d[1]: 10.0, d[2]: -5.0}),
        _row(0, 3, -1.0, -9.0, {d[0]: -1.0, d[1]: 0.0, d[2]: -9.0}),
        # fold 1: X=1 and X=3 tie in sample (8): the first candidate is chosen; best OOS
        _row(1, 3, 8.0, 1.0, {d[1]: 0.0, d[2]: 8.0, d[3]: 1.0}),
        _row(1, 1, 8.0, 7.0, {d[1]: 5.0, d[2]: 3.0, d[3]: 7.0}),
        _row(1, 2, 2.0, 0.0, {d[1]: 9.0, d[2]: -7.0, d[3]: 0.0}),
    ]
    s = walkforward_summarize(rows=rows, folds=folds, candidates=candidates)
    assert [f["chosen"] for f in s["folds"]] == [{"X": 2}, {"X": 1}]
    # every candidate's in/out-of-sample total P&L, in grid order whatever the rows' order
    assert [[(c["overrides"]["X"], c["in_sample"], c["out_of_sample"]) for c in f["scores"]]
            for f in s["folds"]] == [[(1, 10.0, 4.0), (2, 30.0, -5.0), (3, -1.0, -9.0)],
                                     [(1, 8.0, 7.0), (2, 2.0, 0.0), (3, 8.0, 1.0)]]  # fmt: skip
    assert [f["oos_rank"] for f in s["folds"]] == [2.0, 3.0]
    assert [(e["session"], e["pnl"], e["equity"]) for e in s["oos_equity"]] == [
        (d[2], -5.0, -5.0),
        (d[3], 7.0, 2.0),
    ]
    assert s["oos_total_pnl"] == 2.0
    # efficiency: OOS per session (-5 + 7) over IS per session (30/2 + 8/2)
    assert s["efficiency"] == pytest.approx(2 / 19, abs=1e-4)
    assert s["stability"]["X"] == {"by_fold": [2, 1], "distinct": 2, "most_common": "2",
                                   "share": 0.5}  # fmt: skip
    assert s["overfitting"]["candidates"] == 3 and s["overfitting"]["sessions"] == 4


def test_a_fold_where_nothing_traded_out_of_sample_stores_as_json():
    """Expectancy of no trades is no score: the report keeps None, never -inf (jsonb refuses
    it, and the run would stay running)."""
    d = ["2024-01-01", "2024-01-02", "2024-01-03"]
    folds = [{"index": 0, "train": d[:2], "test": d[2:]}]
    rows = [_row(0, x, 4.0 * x, 0.0, dict.fromkeys(d, 0.0)) for x in (1, 2)]
    for row in rows:
        row["out_of_sample"] |= {"trades": 0, "expectancy": None}
    s = walkforward_summarize(rows=rows, folds=folds, candidates=[{"X": 1}, {"X": 2}],
                              objective="expectancy")  # fmt: skip
    f = s["folds"][0]
    assert f["chosen"] == {"X": 2}  # IS expectancy 8/2 = 4 beats 4/2 = 2
    assert f["best_oos"] is None and [c["out_of_sample"] for c in f["scores"]] == [None, None]
    json.dumps(s, allow_nan=False)  # raises on inf or nan


def test_candidates_are_matched_whatever_the_key_order_of_the_stored_json():
    """PostgreSQL's jsonb stores object keys in its own order: the summary must not care."""
    d = ["2024-01-01", "2024-01-02", "2024-01-03"]
    folds = [{"index": 0, "train": d[:2], "test": d[2:]}]
    stored = [{"B": 1, "A": 2}, {"B": 3, "A": 2}]  # as read back from the database
    rows = [
        {**_row(0, 0, 5.0, 1.0, dict.fromkeys(d, 0.0)), "overrides": {"A": 2, "B": 1}},
        {**_row(0, 0, 9.0, 2.0, dict.fromkeys(d, 0.0)), "overrides": {"A": 2, "B": 3}},
    ]
    s = walkforward_summarize(rows=rows, folds=folds, candidates=stored)
    assert s["folds"][0]["chosen"] == {"A": 2, "B": 3}


def test_parameter_stability_of_a_constant_choice_is_one():
    st = parameter_stability([{"A": 1.5, "B": 2}, {"A": 1.5, "B": 3}, {"A": 1.5, "B": 2}])
    assert st["A"]["share"] == 1.0 and st["A"]["distinct"] == 1
    assert st["B"]["share"] == pytest.approx(2 / 3, abs=1e-4) and st["B"]["distinct"] == 2


def _spy_base():
    from tests.conftest import shared_file

    return {"data": str(shared_file("data/SPY_1m_2011-01.csv")), "symbols": ["SPY"],
            "setups": ["EMA_CROSS", "HOD_FAIL"], "mode": "fast"}  # fmt: skip


@pytest.mark.django_db
def test_an_eager_run_on_spy_sessions_splits_each_backtest_by_session(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from analytics.backtest.config import BacktestConfig
    from analytics.backtest.runner import DataSpec, backtest_run
    from analytics.walkforward import _cut, frames_for

    base = _spy_base()
    plan = WalkForwardPlan(grid={"RISK_STOP_ATR_MULTIPLIER": [1.0, 2.0]}, base=base,
                           train=6, test=3, step=3)  # fmt: skip
    run = walkforward_start(plan)
    assert run.status == "done", run.summary
    s = run.summary
    assert len(run.folds) == 4 and s["cells"] == 8 and s["failed"] == 0
    # fold 0's chosen candidate: its IS + OOS trades are the trades of one backtest of
    # the fold's sessions with those settings
    f0 = s["folds"][0]
    fold = Fold.of(run.folds[0])
    config = BacktestConfig.from_settings(overrides=f0["chosen"], setups=base["setups"])
    result = backtest_run(spec=DataSpec(base["data"], ("SPY",), fold.train[0], fold.test[-1]),
                          config=config, frames=_cut(frames_for(base), fold.train[0],
                                                     fold.test[-1]))  # fmt: skip
    trades = result.closed_trades()
    assert f0["in_sample"]["trades"] + f0["out_of_sample"]["trades"] == len(trades)
    oos = sum(t.pnl for t in trades if t.session_date() in set(fold.test))
    assert f0["out_of_sample"]["total_pnl"] == pytest.approx(oos, abs=1e-3)
    assert len(s["oos_equity"]) == 4 * 3  # every test session once, in order
    assert [e["session"] for e in s["oos_equity"]] == sorted(e["session"] for e in s["oos_equity"])


@pytest.mark.django_db
def test_the_command_prints_the_report_and_rejects_bad_input(settings, capsys):
    from django.core.management import CommandError, call_command

    settings.CELERY_TASK_ALWAYS_EAGER = True
    base = _spy_base()
    call_command("walkforward", "--data", base["data"], "--symbol", "SPY", "--setups", "EMA_CROSS",
                 "--train", "14", "--test", "6", "--grid", "TRADE_TIMEOUT_MIN=20,45")  # fmt: skip
    out = capsys.readouterr().out
    assert "1 folds x 2 candidates" in out and "PBO (CSCV)" in out
    assert "TRADE_TIMEOUT_MIN: 1 distinct" in out
    with pytest.raises(CommandError, match="too few"):
        call_command("walkforward", "--data", base["data"], "--symbol", "SPY", "--train", "40",
                     "--grid", "TRADE_TIMEOUT_MIN=20")  # fmt: skip
    with pytest.raises(CommandError, match="NOPE is not a setting"):
        call_command("walkforward", "--grid", "NOPE=1")
