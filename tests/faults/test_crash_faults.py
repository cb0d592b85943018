"""Celery workers SIGKILLed mid-flow: no duplicate, no orphan, positions agree after restart."""

import pytest

from tests.faults.crash_faults import run_crash_faults
from tests.faults.sizes import size


@pytest.mark.slow
def test_sigkilled_workers_leave_no_duplicates_orphans_or_mismatches():
    # every flow can trade (a symbol each, no equity or loss caps), so kills land in entry sends
    figures = run_crash_faults(flows=size(10, 1000), kills=size(2, 40), all_trade=True)
    print(figures)
    assert figures["kills"] == size(2, 40)
    assert figures["kill_points"][0] < figures["flows"]  # the first kill landed mid-run
    assert figures["reconcile_ok"]
    assert figures["unfinished_flows"] == 0
    assert figures["duplicate_orders"] == 0
    assert figures["orphan_orders"] == 0, figures["orphan_examples"]
    assert figures["position_mismatches"] == 0
    assert figures["state_mismatches"] == 0, figures["mismatch_examples"]
    assert figures["entries_dropped_by_crash"] == 0  # resumed, not cancelled (finding 5)
