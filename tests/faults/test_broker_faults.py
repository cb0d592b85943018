"""30% of Tradier requests fail: no order lost, none doubled, every failure in the metrics."""

import pytest

from tests.faults.broker_faults import run_broker_faults
from tests.faults.sizes import size


@pytest.mark.slow
@pytest.mark.django_db
def test_broker_faults_lose_and_double_nothing():
    figures = run_broker_faults(flows=size(12, 300), fault_rate=0.3)
    print(figures)
    assert figures["errors"] == 0, figures["first_error"]
    assert figures["faults_injected"] >= 10
    assert figures["failures_in_metrics"] == figures["faults_injected"]
    assert figures["reconcile_ok"]
    assert figures["doubled_orders"] == 0
    assert figures["lost_orders"] == 0, figures["lost_examples"]
    assert figures["unsettled_orders"] == 0
    assert figures["state_mismatches"] == 0, figures["mismatch_examples"]
    assert figures["position_mismatches"] == 0
    assert figures["unlinked_bracket_legs"] == 0, figures["unlinked_examples"]
    assert figures["trades_with_two_stops"] == 0
