"""The money-safety figures of a trade list, on trades built by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analytics.backtest.result import ExitLeg, TradeRecord
from analytics.money_safety import cash_and_exposure, duplicated_ideas, stopouts

T = datetime(2011, 1, 3, 15, 0, tzinfo=UTC)


def trade(setup, minute, qty, entry, exits, stop=99.0, exec_symbol="SPY"):
    legs = [ExitLeg(T + timedelta(minutes=m), q, p, r) for m, q, p, r in exits]
    return TradeRecord(
        "SPY", exec_symbol, setup, T + timedelta(minutes=minute - 1),
        T + timedelta(minutes=minute), entry, qty, stop, None, None, legs,
    )  # fmt: skip


def test_two_entries_on_one_bar_take_cash_below_zero_before_any_exit():
    a = trade("ORB", 1, 600, 100.0, [(5, 600, 101.0, "target_two")])
    b = trade("HOD_FAIL", 1, 600, 100.0, [(1, 600, 99.0, "stop")])  # exits on its entry bar
    figures = cash_and_exposure([a, b], starting_cash=100_000)
    # both bought at minute 1 (120,000) before b's exit on that bar
    assert figures["min_cash"] == -20_000.0
    assert figures["max_gross_exposure"] == 120_000.0


def test_same_setup_same_symbol_while_held_or_within_the_window_is_a_duplicate():
    first = trade("ORB", 1, 10, 100.0, [(10, 10, 101.0, "target_two")])
    while_held = trade("ORB", 5, 10, 100.0, [(12, 10, 101.0, "target_two")])
    later = trade("ORB", 40, 10, 100.0, [(45, 10, 101.0, "target_two")])
    other_setup = trade("HOD_FAIL", 5, 10, 100.0, [(8, 10, 101.0, "target_two")])
    assert duplicated_ideas([first, while_held, later, other_setup], window_sec=300) == 1
    # 40 minutes after a trade that ended at minute 12: a duplicate only with a long window
    assert duplicated_ideas([first, while_held, later], window_sec=3600) == 2


def test_stopout_loss_over_risk_plain_and_gapped():
    plain = trade("ORB", 1, 100, 100.0, [(3, 100, 98.96, "stop")], stop=99.0)  # 4 bp below
    gapped = trade("ORB", 5, 100, 100.0, [(7, 100, 98.0, "stop")], stop=99.0)
    target = trade("ORB", 9, 100, 100.0, [(11, 100, 102.0, "target_two")])
    figures = stopouts([plain, gapped, target], risk_usd=100.0)
    assert figures["plain"] == 1 and figures["gapped"] == 1
    assert figures["plain_worst_loss_over_risk"] == 1.04  # 104 lost on a 100 budget
    assert figures["gapped_worst_loss_over_risk"] == 2.0


def test_money_figures_command_reports_the_index_and_its_proxy_as_one_idea(tmp_path, settings):
    """SPX (SPY x 10) executes in SPY: the report counts its trades under SPY."""
    import json
    from datetime import date
    from io import StringIO

    from django.core.management import call_command

    from analytics.bars import bars_frame_from_data
    from marketdata.replay import synthetic_sessions

    settings.RISK_MAX_DAILY_LOSS_R = 0
    frame = bars_frame_from_data(
        synthetic_sessions(symbol="SPY", sessions=2, seed=5, end=date(2024, 3, 15))
    )
    out = frame[["open", "high", "low", "close", "volume"]].copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "spy.csv"
    out.to_csv(path, index_label="ts")
    buffer = StringIO()
    call_command("money_figures", str(path), "--index", "SPX:10", stdout=buffer)
    body = json.loads(buffer.getvalue())
    assert body["sessions"] == 2
    money = body["money"]
    assert money["trades"] == body["stats"]["ALL"]["trades"] > 0
    assert money["min_cash"] <= 100_000 and money["max_gross_exposure"] <= 100_000
    assert body["signals"]["fired"] == body["signals"]["approved"] + body["signals"]["blocked"]
