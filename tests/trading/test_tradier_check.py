"""`manage.py tradier_check` against the local fake over real HTTP and its websocket: every
step works and is printed; a broken account fails the command naming the step."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import CommandError, call_command

from tests.trading.fake_tradier import FakeTradier


@pytest.fixture
def served(settings):
    fake = FakeTradier(account=f"VA{uuid.uuid4().hex[:8].upper()}")
    settings.TRADIER_BASE_URL = fake.serve_http()
    settings.TRADIER_ACCOUNT_WS_URL = fake.start_stream()
    settings.TRADIER_ACCESS_TOKEN = "test-token"
    settings.TRADIER_ACCOUNT_ID = fake.account
    fake.quote("SPY", "450.00", "450.02")
    yield fake
    fake.close()


def test_every_step_works_against_the_fake(served):
    out = io.StringIO()
    call_command("tradier_check", "--timeout", "5", stdout=out)
    table = out.getvalue()
    for step in (
        "profile lists TRADIER_ACCOUNT_ID",
        "balances",
        "account stream",
        "place far-from-market limit",
        "order seen on the stream",
        "order found by tag",
        "cancel (read back)",
        "cancel seen on the stream",
    ):
        line = next(line for line in table.splitlines() if line.startswith(step))
        assert "  ok " in line, table
    (order,) = served.orders.values()
    assert order["price"] == 225.0 and order["quantity"] == 1.0  # half the bid, one share
    assert order["status"] == "canceled" and order["tag"].startswith("at-check-")
    assert sum(served.throttled.values()) == 0


def test_a_wrong_account_fails_and_says_which_step(served, settings):
    settings.TRADIER_ACCOUNT_ID = "VA99999999"
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("tradier_check", "--no-order", stdout=out)
    line = next(x for x in out.getvalue().splitlines() if x.startswith("profile"))
    assert "FAILED" in line
