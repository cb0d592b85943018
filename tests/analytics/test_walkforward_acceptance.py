"""Issue 16's acceptance run: walk-forwards of 5 folds x 27 candidates on the shared SPY and ES
sessions, fanned out over a real Celery worker process on Redis, ending in the chord's summary.

Small slices keep it short: the first 7 sessions of each file, rolling 2 training / 1 test
session, so each of the 2 x 135 cells backtests 3 sessions. The invariants come from the
walk-forward rule, not from the program: the folds are the ones the rule makes of those dates,
the chosen candidate is the in-sample best by total P&L (ties: the first of the grid), and the
stitched out-of-sample equity is the chosen candidates' test sessions, in order. The figures
behind the choice are checked against backtests run here, in-process, from the slice file.
"""

from __future__ import annotations

import csv
import time
import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import shared_file

NY = ZoneInfo("America/New_York")
GRID = [  # 3 x 3 x 3 = 27 candidates
    "RISK_STOP_ATR_MULTIPLIER=1.0,1.5,2.0",
    "TARGET_ONE_ATR_MULTIPLIER=1.0,1.5,2.0",
    "TRADE_TIMEOUT_MIN=20,45,90",
]
# The first 7 New York sessions of each file (read off the calendar: SPY skips the weekend of
# 2011-01-08/09; ES skips 2020-01-04/05), and the folds the rolling rule makes of them: fold k
# trains on sessions k, k+1 and tests on session k+2.
SETS = {
    "SPY": ("data/SPY_1m_2011-01.csv", ["2011-01-03", "2011-01-04", "2011-01-05", "2011-01-06",
                                        "2011-01-07", "2011-01-10", "2011-01-11"]),
    "ES": ("data/ES_1m_2020-01_04.csv", ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07",
                                         "2020-01-08", "2020-01-09", "2020-01-10"]),
}  # fmt: skip


def _slice(source, sessions: list[str], out) -> str:
    """Copy the bars of `sessions` (New York dates, pre/post-market included) to `out`."""
    keep = set(sessions)
    with open(source, newline="") as src, open(out, "w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow(next(reader))
        for row in reader:
            ts = datetime.fromisoformat(row[0].replace("Z", "+00:00"))
            if ts.astimezone(NY).date().isoformat() in keep:
                writer.writerow(row)
    return str(out)


def _backtest(path: str, symbol: str, overrides: dict, first: str, last: str) -> dict[str, float]:
    """P&L per session of one backtest run here, through the public runner from the file."""
    from analytics.backtest.config import BacktestConfig
    from analytics.backtest.runner import DataSpec, backtest_run

    spec = DataSpec(path, (symbol,), date.fromisoformat(first), date.fromisoformat(last))
    result = backtest_run(spec=spec, config=BacktestConfig.from_settings(overrides=overrides))
    per: dict[str, float] = {}
    for t in result.closed_trades():
        day = t.session_date().isoformat()
        per[day] = per.get(day, 0.0) + float(t.pnl)
    return per


def _wait(runs: list, worker, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and worker.poll() is None:
        for run in runs:
            run.refresh_from_db()
        if all(run.status != "running" for run in runs):
            return
        time.sleep(0.5)


def _check_run(run, *, symbol: str, path: str, sessions: list[str]) -> None:
    s = run.summary
    assert run.status == "done", s
    assert run.plan["objective"] == "total_pnl"
    assert len(run.candidates) == 27 and s["candidates"] == 27
    assert s["cells"] == 5 * 27 and s["failed"] == 0, s.get("errors")

    # folds: the rule's, disjoint and ordered
    folds = run.folds
    assert [(f["train"], f["test"]) for f in folds] == [
        (sessions[k : k + 2], [sessions[k + 2]]) for k in range(5)
    ]
    tests = [d for f in folds for d in f["test"]]
    assert tests == sorted(tests) and len(set(tests)) == len(tests)
    assert all(max(f["train"]) < min(f["test"]) for f in folds)

    distinct_choices = 0
    cumulative, equity = 0.0, iter(s["oos_equity"])
    for fold, report in zip(folds, s["folds"], strict=True):
        assert report["fold"] == fold["index"] and "error" not in report
        # chosen = the in-sample best by total P&L among all 27, the first of the grid on a tie
        scores = report["scores"]
        assert [c["overrides"] for c in scores] == run.candidates  # one each, grid order
        best = max(c["in_sample"] for c in scores)
        first_best = next(c for c in scores if c["in_sample"] == best)
        assert report["chosen"] == first_best["overrides"]
        assert report["in_sample"]["total_pnl"] == best
        distinct_choices += len({c["in_sample"] for c in scores}) > 1
        # the winner and the runner-up backtested here: the stored figures are theirs
        others = [c for c in scores if c["overrides"] != report["chosen"]]
        runner_up = max(others, key=lambda c: c["in_sample"])
        first, last = fold["train"][0], fold["test"][-1]
        mine = _backtest(path, symbol, report["chosen"], first, last)
        theirs = _backtest(path, symbol, runner_up["overrides"], first, last)
        is_mine = sum(mine.get(d, 0.0) for d in fold["train"])
        is_theirs = sum(theirs.get(d, 0.0) for d in fold["train"])
        assert is_mine == pytest.approx(best, abs=1e-3)
        assert is_theirs == pytest.approx(runner_up["in_sample"], abs=1e-3)
        assert is_mine >= is_theirs
        oos = sum(mine.get(d, 0.0) for d in fold["test"])
        assert report["out_of_sample"]["total_pnl"] == pytest.approx(oos, abs=1e-3)
        # the stitched curve continues with this fold's test sessions, the chosen one's P&L
        for day in fold["test"]:
            point = next(equity)
            cumulative += mine.get(day, 0.0)
            assert point["session"] == day
            assert point["pnl"] == pytest.approx(mine.get(day, 0.0), abs=1e-3)
            assert point["equity"] == pytest.approx(cumulative, abs=1e-3)
    assert next(equity, None) is None  # every test session once, nothing else
    assert s["oos_total_pnl"] == pytest.approx(cumulative, abs=1e-3)
    assert distinct_choices >= 1, "every candidate tied in every fold: the grid chose nothing"

    over = s["overfitting"]
    assert over["candidates"] == 27 and over["sessions"] == len(sessions)
    assert 0.0 <= over["pbo"]["pbo"] <= 1.0 and over["pbo"]["splits"] >= 2
    dsr = over["deflated_sharpe"]["dsr"]
    assert dsr is None or 0.0 <= dsr <= 1.0
    assert set(s["stability"]) == {g.partition("=")[0] for g in GRID}


@pytest.mark.slow
@pytest.mark.timeout(900)  # 270 cells: about a minute of CPU, several at the machine's load
@pytest.mark.django_db(transaction=True)
def test_walkforwards_on_spy_and_es_fan_out_over_a_real_celery_worker(tmp_path):
    from django.db import connection

    from analytics.models import WalkForwardRun
    from analytics.sweeps import grid_parse
    from analytics.walkforward import WalkForwardPlan, walkforward_start
    from autotrader_site.celery import app
    from tests.analytics.celery_worker import celery_worker

    paths = {
        symbol: _slice(shared_file(rel), sessions, tmp_path / f"{symbol}.csv")
        for symbol, (rel, sessions) in SETS.items()
    }
    grid = grid_parse(GRID)
    queue = f"wf-accept-{uuid.uuid4().hex[:10]}"
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        with celery_worker(queue=queue, database=connection.settings_dict["NAME"],
                           concurrency=2) as worker:  # fmt: skip
            runs = {}
            for symbol, path in paths.items():
                base = {"data": path, "symbols": [symbol], "mode": "fast"}
                plan = WalkForwardPlan(grid=grid, base=base, train=2, test=1)
                runs[symbol] = walkforward_start(plan, queue=queue)
                assert runs[symbol].status == "running"  # dispatched, not run here
            _wait(list(runs.values()), worker, 780)
            assert worker.poll() is None, "the worker exited during the run"
    finally:
        app.conf.task_always_eager = eager
    for symbol, run in runs.items():
        run = WalkForwardRun.objects.get(pk=run.pk)
        _check_run(run, symbol=symbol, path=paths[symbol], sessions=SETS[symbol][1])
