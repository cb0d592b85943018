"""The worker's PostgreSQL connections are killed mid-session: it recovers within 30 s and no
fill is lost (the broker's fills all reach the ledger after reconciliation)."""

import pytest

from tests.faults.db_faults import run_db_faults
from tests.faults.sizes import size


@pytest.mark.slow
def test_killed_connections_recover_without_losing_a_fill():
    figures = run_db_faults(flows=size(12, 150), kills=size(1, 6))
    print(figures)
    assert figures["connection_kills"] == size(1, 6) and figures["backends_terminated"] >= 1
    assert figures["not_recovered"] == 0
    assert figures["recovery_seconds_max"] <= 30
    assert figures["fills_lost_qty"] == 0
    assert figures["orphan_orders"] == 0
    assert figures["duplicate_orders"] == 0
    assert figures["position_mismatches"] == 0
    # Known gap (reported, not asserted): a task whose connection is killed under it fails
    # and is acknowledged, so its signal is never decided: figures["lost_flows"].
