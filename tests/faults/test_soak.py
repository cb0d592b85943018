"""The soak, small: 30 minutes of a replayed session of 4 symbols on the full stack (web, 2
workers, beat, the streamer fed by the fake Polygon websocket) with 1 worker SIGKILL, 1 round
of database connection kills and 1 Redis restart, on servers of the test's own; it ends with
ledger = broker and every signal's outcome true to its orders (tests/faults/soak.py)."""

import pytest

from tests.faults.sizes import size
from tests.faults.soak import SPY_FILE, _shared_data, run_soak


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="issue 17, reliability finding 23 (open): 17 of 18 runs clean after findings 19-21; "
    "in 1 both workers exited 1 when a task that ran through the Redis restart acked its message "
    "through the lost connection's channel (Celery 5.7 / kombu AttributeError from the event loop)",
)
def test_soak_session_with_kills_ends_with_ledger_equal_to_broker():
    if not (_shared_data() / SPY_FILE).exists():
        pytest.skip(f"{SPY_FILE} not in the shared data directory")
    kills, db_kills = size(1, 8), size(1, 4)
    figures = run_soak(
        minutes=size(30, 390), kills=kills, db_kills=db_kills, redis_restarts=1, sec_per_minute=0.5
    )
    print(figures)
    # the faults happened, on the stack as it was meant to run
    assert figures["worker_kills"] == kills
    assert figures["db_kills"] == db_kills and all(
        e["backends"] >= 1 for e in figures["faults"] if e["kind"] == "db_kill"
    )
    assert figures["redis_restarts"] == 1
    assert figures["process_starts"]["worker0"] + figures["process_starts"]["worker1"] == 2 + kills
    assert figures["web_status"].get("200", 0) >= 1
    assert figures["signals"] >= 1  # setups fired: there were flows to lose
    # every bar of the session reached the pipeline, complete, once
    assert figures["bars_stored"] == figures["bars_expected"]
    assert figures["bars_lost"] == 0
    assert figures["bars_partial"] == 0, figures["partial_examples"]
    assert figures["bars_duplicate"] == 0
    assert figures["bars_provisional_left"] == 0
    assert figures["flows_lost"] == 0
    assert figures["flows_lost_stale"] == 0  # none found by the scan too late to trade
    # ledger = broker
    assert figures["reconcile_ok"], figures["reconcile_error"]
    assert figures["orders_duplicate"] == 0
    assert figures["orders_orphan"] == 0, figures["orphan_examples"]
    assert figures["orders_mismatch"] == 0, figures["mismatch_examples"]
    assert figures["positions_mismatch"] == 0
    assert figures["fills_lost"] == 0
    assert figures["broker_filled_qty"] == figures["ledger_filled_qty"]
    # the journal tells what happened to every signal's orders
    assert figures["signals_mislabelled"] == 0, figures["mislabelled_examples"]
