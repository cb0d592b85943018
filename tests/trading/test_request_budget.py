"""The shared Tradier request budget on real Redis: endpoint classes as Tradier documents them,
the bucket never admits more than the limit per window, priorities keep room for protection,
the X-Ratelimit-* headers correct it, and 4 workers against the fake's enforced limits get no
429 (while the same load without the budget does: the test can fail)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace

import httpx
import pytest

from marketdata.clients.tradier_budget import (
    CRITICAL,
    ENTRY,
    MARKET,
    READ,
    STANDARD,
    TRADING,
    BudgetConfig,
    BudgetExhausted,
    RequestBudget,
    default_limits,
    endpoint_class,
    redis_client,
)
from marketdata.clients.tradier_http import TradierHTTP, TradierRetryableError
from tests.trading.fake_tradier import FakeTradier


def budget(limits, window=2.0, share=0.5, max_wait=10.0, reserve=0) -> RequestBudget:
    config = BudgetConfig(
        limits=limits,
        reserve=reserve,
        window_sec=window,
        rate_share=share,
        max_wait_sec=max_wait,
        prefix=f"autotrader:test:budget:{uuid.uuid4().hex}",
    )
    return RequestBudget(config, redis_client())


@pytest.mark.parametrize(
    ("method", "path", "klass"),
    [
        ("POST", "accounts/VA1/orders", TRADING),
        ("PUT", "/accounts/VA1/orders/12", TRADING),
        ("DELETE", "accounts/VA1/orders/12", TRADING),
        ("GET", "accounts/VA1/orders", STANDARD),  # reading orders is "standard"
        ("GET", "accounts/VA1/balances", STANDARD),
        ("POST", "accounts/events/session", STANDARD),
        ("GET", "user/profile", STANDARD),
        ("GET", "markets/quotes", MARKET),
        ("GET", "v1/markets/timesales", MARKET),
    ],
)
def test_endpoint_classes_follow_tradiers_rate_limit_page(method, path, klass):
    assert endpoint_class(method, path) == klass


def test_default_limits_by_environment():
    assert default_limits("prod") == {TRADING: 60, STANDARD: 120, MARKET: 120}
    assert default_limits("sandbox") == {TRADING: 60, STANDARD: 60, MARKET: 60}


def test_bucket_admits_the_burst_then_the_refill_rate():
    """limit 20 per 60 s, rate share 0.5: capacity 10 at once, then one per 6 s."""
    b = budget({TRADING: 20}, window=60.0)
    granted = [b.try_take(TRADING, CRITICAL) == 0.0 for _ in range(12)]
    assert granted == [True] * 10 + [False] * 2
    assert 5.0 < b.try_take(TRADING, CRITICAL) <= 6.0  # the wait for one token
    fast = budget({TRADING: 20}, window=2.0)  # 5 per second
    assert sum(fast.try_take(TRADING, CRITICAL) == 0.0 for _ in range(12)) == 10
    time.sleep(0.25)  # ~1.25 tokens
    assert sum(fast.try_take(TRADING, CRITICAL) == 0.0 for _ in range(5)) in (1, 2)


def test_one_request_per_window_is_kept_back_by_default():
    config = BudgetConfig(limits={TRADING: 60}, rate_share=0.9)
    assert config.capacity(TRADING) + config.refill_per_sec(TRADING) * 60 == pytest.approx(59)


def _minute_end_burst(budget: RequestBudget, symbols: int) -> list[bool]:
    """What a minute's close asks of the budget when `symbols` setups fire at once: per
    signal the decision's quote (market) and balances (standard) reads, the entry POST, then
    its protective stop POST. True for each request granted without waiting."""
    grants = []
    for _ in range(symbols):
        grants.append(budget.try_take(MARKET, READ) == 0.0)
        grants.append(budget.try_take(STANDARD, READ) == 0.0)
        grants.append(budget.try_take(TRADING, ENTRY) == 0.0)
    for _ in range(symbols):
        grants.append(budget.try_take(TRADING, CRITICAL) == 0.0)
    return grants


def test_the_default_budget_lets_a_minute_end_burst_through(settings):
    """Sandbox limits (60 per class, one kept back: L = 59) with the default rate share 0.5:
    capacity 59 x 0.5 = 29.5 per class; reads leave half (14.75), so 14 go at once, entries a
    quarter (7.375). Eight setups firing at one close need 8 reads per read class and 16
    trading calls: all granted at once. With a rate share of 0.9 (capacity 5.9, reads leave
    2.95: 5.9 -> 4.9 -> 3.9, then 2.9 < 2.95) the third decision's quote already waits, and
    every read after it about 1.1 s (one token per 60 / 53.1 s)."""
    settings.TRADIER_ENV = "sandbox"
    settings.TRADIER_ACCOUNT_ID = f"VA{uuid.uuid4().hex[:8]}"
    for name in ("TRADING", "STANDARD", "MARKET"):
        setattr(settings, f"TRADIER_BUDGET_{name}_PER_MIN", 0)
    config = BudgetConfig.from_settings()
    assert config.rate_share == 0.5 and config.capacity(MARKET) == pytest.approx(29.5)
    assert _minute_end_burst(RequestBudget(config, redis_client()), 8) == [True] * 32
    narrow = replace(config, rate_share=0.9, prefix=f"{config.prefix}:narrow")
    grants = _minute_end_burst(RequestBudget(narrow, redis_client()), 8)
    assert grants[:6] == [True] * 6 and grants[6] is False  # the third decision's quote


def test_priorities_leave_room_for_protection():
    b = budget({STANDARD: 20}, window=60.0)  # capacity 10: reads keep 5 back, entries 2.5
    reads = sum(b.try_take(STANDARD, READ) == 0.0 for _ in range(10))
    entries = sum(b.try_take(STANDARD, ENTRY) == 0.0 for _ in range(10))
    critical = sum(b.try_take(STANDARD, CRITICAL) == 0.0 for _ in range(10))
    assert (reads, entries, critical) == (5, 2, 3)


def test_headers_saying_the_interval_is_spent_make_everyone_wait_for_expiry():
    b = budget({MARKET: 20})
    expiry_ms = int((time.time() + 0.6) * 1000)
    b.observe(
        MARKET,
        httpx.Headers(
            {
                "X-Ratelimit-Allowed": "20",
                "X-Ratelimit-Used": "20",
                "X-Ratelimit-Available": "0",
                "X-Ratelimit-Expiry": str(expiry_ms),
            }
        ),
    )
    wait = b.try_take(MARKET, CRITICAL)  # our bucket is full, Tradier says no
    assert 0.3 < wait <= 0.6
    with pytest.raises(BudgetExhausted):
        b.acquire(MARKET, READ, max_wait=0.1)
    time.sleep(wait + 0.05)
    assert b.try_take(MARKET, CRITICAL) == 0.0


def _hammer(fake, shared: RequestBudget | None, seconds: float, errors: list) -> None:
    """One worker: its own client (and budget object on the shared Redis state), sending a mix
    of trading, standard and market calls as fast as it is allowed for `seconds`."""
    own = None
    if shared is not None:
        own = RequestBudget(shared.config, redis_client())
    http = TradierHTTP(
        base_url="http://127.0.0.1:9/v1/",
        token="test-token",
        max_retries=0,
        transport=fake.transport(),
        budget=own,
    )
    prefix = f"accounts/{fake.account}"
    form = {"class": "equity", "symbol": "SPY", "side": "buy", "quantity": "1", "type": "limit"}
    end = time.monotonic() + seconds
    n = 0
    try:
        while time.monotonic() < end:
            n += 1
            try:
                if n % 3 == 0:
                    tag = f"w-{uuid.uuid4().hex[:8]}"
                    data = {**form, "duration": "day", "price": "1.00", "tag": tag}
                    http.post(f"{prefix}/orders", endpoint="orders.create", data=data)
                elif n % 3 == 1:
                    http.get(f"{prefix}/balances", endpoint="balances")
                else:
                    http.get("markets/quotes", endpoint="quotes", params={"symbols": "SPY"})
            except TradierRetryableError as exc:
                if exc.status != 429:
                    raise
                if exc.body == "budget":
                    errors.append(exc)  # our own budget refused: a starved worker
    except Exception as exc:  # noqa: BLE001 - reported to the test thread
        errors.append(exc)


def _run_workers(fake, shared, seconds=3.0, workers=4) -> None:
    errors: list = []
    threads = [
        threading.Thread(target=_hammer, args=(fake, shared, seconds, errors))
        for _ in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 20)
    assert not errors, errors


def test_four_workers_sharing_the_budget_cause_no_429():
    limits = {TRADING: 10, STANDARD: 20, MARKET: 20}
    fake = FakeTradier(limits=limits, window_sec=1.0)
    shared = budget(limits, window=1.0, share=0.7, max_wait=5.0, reserve=1)
    _run_workers(fake, shared, seconds=3.0)
    assert sum(fake.throttled.values()) == 0, fake.throttled
    # the budget was the constraint: more than one interval's worth was served, and no more
    # than the limits allow over the run (3 intervals + the one in progress)
    assert fake.served[MARKET] > limits[MARKET]
    for klass, limit in limits.items():
        assert fake.served[klass] <= limit * 4, (klass, fake.served)


def test_the_same_load_without_the_budget_is_throttled():
    limits = {TRADING: 10, STANDARD: 20, MARKET: 20}
    fake = FakeTradier(limits=limits, window_sec=1.0)
    _run_workers(fake, None, seconds=1.0)
    assert sum(fake.throttled.values()) > 0
