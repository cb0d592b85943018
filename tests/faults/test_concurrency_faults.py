"""Eight decider processes on PostgreSQL never exceed a risk limit."""

import pytest

from tests.faults.concurrency_faults import run_concurrency
from tests.faults.sizes import size


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_deciders_never_breach_limits():
    figures = run_concurrency(bursts=size(12, 625))
    print(figures)
    assert figures["errors"] == 0, figures["first_error"]
    # The limits were really binding: many decisions approved, many blocked.
    assert figures["approved"] > 0 and figures["risk_blocked"] > figures["approved"]
    assert figures["loss_limit_bursts"] > 0
    assert figures["breaches"] == {
        "max_concurrent": 0,
        "max_open_orders": 0,
        "per_symbol": 0,
        "daily_loss": 0,
    }
