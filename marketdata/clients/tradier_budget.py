"""One Tradier request budget shared by every process (web, Celery workers, beat, the account
stream): a token bucket per endpoint class in Redis, corrected by Tradier's X-Ratelimit-*
headers, with priorities so protection never waits behind reads.

Tradier's rate limits (documentation, "Rate Limiting") are per access token and per 1-minute
interval that starts with the first request:
- trading (placing, modifying, cancelling orders): 60/min in production and sandbox;
- standard (/accounts, /users, /watchlists, reading /orders, the events session): 120/min in
  production, 60/min in sandbox;
- market data (/markets): 120/min in production, 60/min in sandbox.
Every answer carries X-Ratelimit-Allowed, -Used, -Available and -Expiry (epoch ms of the
interval's end).

Why a bucket of `capacity = L x (1 - rate share)` refilled at `L x rate share / window`, with
L = limit - 1: over any window the bucket admits at most capacity + refill = L, so even a burst
that starts a fresh Tradier interval cannot exceed Tradier's fixed window; the one request kept
back covers a request granted just before an interval and arriving just after. When the headers say
the interval is spent (Available <= the priority's floor), callers wait until Expiry.

Priorities (`CRITICAL` cancels and stop changes, `ENTRY` new entries, `READ` everything else):
a request may only take a token if at least its floor remains afterwards, so reads leave room
for entries and entries leave room for protection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from django.conf import settings
from redis.exceptions import RedisError

from autotrader_site.metrics import (
    TRADIER_BUDGET_AVAILABLE,
    TRADIER_BUDGET_GRANTED_TOTAL,
    TRADIER_BUDGET_WAIT_SECONDS,
)

log = logging.getLogger(__name__)

CRITICAL, ENTRY, READ = 0, 1, 2
PRIORITY_NAMES = {CRITICAL: "critical", ENTRY: "entry", READ: "read"}
TRADING, STANDARD, MARKET = "trading", "standard", "market"
# Share of the bucket a priority must leave untouched (of the capacity).
FLOOR_SHARE = {CRITICAL: 0.0, ENTRY: 0.25, READ: 0.5}


class BudgetExhausted(Exception):
    """No token within the caller's patience: the request was not sent."""

    def __init__(self, endpoint_class: str, waited: float) -> None:
        super().__init__(f"Tradier {endpoint_class} budget: no token after {waited:.1f}s")
        self.endpoint_class = endpoint_class
        self.waited = waited


def endpoint_class(method: str, path: str) -> str:
    """Which of Tradier's limits a request counts against."""
    path = path.lstrip("/")
    if path.startswith("v1/"):
        path = path[3:]
    if path.startswith("markets/") and not path.startswith("markets/events"):
        return MARKET
    if "/orders" in path and method.upper() in ("POST", "PUT", "DELETE"):
        return TRADING
    return STANDARD


def default_priority(method: str, klass: str) -> int:
    """Cancels and modifies (stop changes) are protection; other trading calls are entries."""
    if klass == TRADING:
        return CRITICAL if method.upper() in ("DELETE", "PUT") else ENTRY
    return READ


def default_limits(env: str) -> dict[str, int]:
    production = env == "prod"
    return {TRADING: 60, STANDARD: 120 if production else 60, MARKET: 120 if production else 60}


@dataclass(frozen=True)
class BudgetConfig:
    limits: dict[str, int]
    window_sec: float = 60.0
    rate_share: float = 0.5  # share of the limit refilled steadily; the rest is the burst
    max_wait_sec: float = 30.0
    prefix: str = "autotrader:tradier:budget"
    reserve: int = 1  # requests per window kept back for the time between grant and arrival

    @classmethod
    def from_settings(cls) -> BudgetConfig:
        limits = default_limits(settings.TRADIER_ENV)
        overrides = {
            TRADING: settings.TRADIER_BUDGET_TRADING_PER_MIN,
            STANDARD: settings.TRADIER_BUDGET_STANDARD_PER_MIN,
            MARKET: settings.TRADIER_BUDGET_MARKET_PER_MIN,
        }
        limits.update({k: v for k, v in overrides.items() if v})
        return cls(
            limits=limits,
            rate_share=settings.TRADIER_BUDGET_RATE_SHARE,
            max_wait_sec=settings.TRADIER_BUDGET_MAX_WAIT_SEC,
            prefix=f"autotrader:tradier:budget:{settings.TRADIER_ACCOUNT_ID}",
        )

    def _effective(self, klass: str) -> float:
        return max(1.0, self.limits[klass] - self.reserve)

    def capacity(self, klass: str) -> float:
        return max(1.0, self._effective(klass) * (1.0 - self.rate_share))

    def refill_per_sec(self, klass: str) -> float:
        return self._effective(klass) * self.rate_share / self.window_sec

    def floor(self, klass: str, priority: int) -> float:
        """Tokens a priority must leave in the bucket; never so high that it can not be met."""
        capacity = self.capacity(klass)
        share = FLOOR_SHARE.get(priority, FLOOR_SHARE[READ])
        return min(capacity * share, max(0.0, capacity - 1.0))


# Atomic take: refill by elapsed time (Redis clock), respect the header view, keep the floor.
# Returns {granted(0/1), wait_ms}.
_TAKE = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local floor = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * per_ms)
local server = redis.call('HMGET', KEYS[2], 'available', 'expiry')
local available = tonumber(server[1])
local expiry = tonumber(server[2])
if available and expiry and now < expiry and available - 1 < floor then
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
  return {0, expiry - now}
end
if tokens - 1 < floor then
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
  local need = floor + 1 - tokens
  return {0, math.ceil(need / per_ms)}
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], 600000)
if available and expiry and now < expiry then
  redis.call('HSET', KEYS[2], 'available', available - 1)
end
return {1, 0}
"""

# The header view: keep the newest interval's numbers (a later Expiry wins; within one
# interval the smaller Available wins, answers may arrive out of order).
_OBSERVE = """
local available = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local allowed = ARGV[3]
local old = redis.call('HMGET', KEYS[1], 'available', 'expiry')
local old_available = tonumber(old[1])
local old_expiry = tonumber(old[2])
if old_expiry and expiry < old_expiry then return 0 end
if old_expiry and expiry == old_expiry and old_available and old_available < available then
  available = old_available
end
redis.call('HSET', KEYS[1], 'available', available, 'expiry', expiry, 'allowed', allowed)
redis.call('PEXPIRE', KEYS[1], 120000)
return 1
"""


def redis_client(url: str | None = None):
    """A Redis client for the budget and the account stream's lease (None without Redis)."""
    import redis

    url = url if url is not None else settings.REDIS_URL
    if not url:
        return None
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


class RequestBudget:
    """Take a token before each Tradier request; feed the answer's headers back."""

    def __init__(
        self,
        config: BudgetConfig,
        redis=None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.redis = redis
        self.sleep = sleep
        self.monotonic = monotonic
        self._take = redis.register_script(_TAKE) if redis is not None else None
        self._observe = redis.register_script(_OBSERVE) if redis is not None else None
        self._local = _LocalBuckets(config)
        self._redis_down = False

    @classmethod
    def from_settings(cls) -> RequestBudget | None:
        if not settings.TRADIER_BUDGET_ENABLED:
            return None
        return cls(BudgetConfig.from_settings(), redis_client())

    def _keys(self, klass: str) -> list[str]:
        return [f"{self.config.prefix}:{klass}:bucket", f"{self.config.prefix}:{klass}:server"]

    def try_take(self, klass: str, priority: int) -> float:
        """0.0 when a token was taken, else the seconds to wait before asking again."""
        floor = self.config.floor(klass, priority)
        if self.redis is None:
            return self._local.try_take(klass, floor)
        try:
            capacity, per_ms = self.config.capacity(klass), self.config.refill_per_sec(klass) / 1e3
            granted, wait_ms = self._take(keys=self._keys(klass), args=[capacity, per_ms, floor])
        except RedisError as exc:
            # Redis is restarting: this process paces itself alone until it is back, so a stop
            # change or an entry is not lost to the outage (Tradier's own 429s still apply).
            if not self._redis_down:
                log.warning("request budget: Redis unreachable (%s); this process paces alone", exc)
            self._redis_down = True
            return self._local.try_take(klass, floor)
        if self._redis_down:
            log.info("request budget: Redis back; the shared budget paces again")
            self._redis_down = False
        return 0.0 if int(granted) else max(0.001, int(wait_ms) / 1000.0)

    def acquire(self, klass: str, priority: int, *, max_wait: float | None = None) -> float:
        """Block until a token is granted; returns the seconds waited. Raises BudgetExhausted
        after `max_wait` (default from config) without a token."""
        patience = self.config.max_wait_sec if max_wait is None else max_wait
        started = self.monotonic()
        while True:
            wait = self.try_take(klass, priority)
            waited = self.monotonic() - started
            if wait == 0.0:
                TRADIER_BUDGET_GRANTED_TOTAL.labels(
                    endpoint_class=klass, priority=PRIORITY_NAMES.get(priority, "read")
                ).inc()
                TRADIER_BUDGET_WAIT_SECONDS.labels(endpoint_class=klass).observe(waited)
                return waited
            if waited + wait > patience:
                raise BudgetExhausted(klass, waited)
            self.sleep(min(wait, 0.25))

    def observe(self, klass: str, headers: httpx.Headers) -> None:
        """Record Tradier's own count from an answer's X-Ratelimit-* headers."""
        available = headers.get("x-ratelimit-available")
        expiry = headers.get("x-ratelimit-expiry")
        if available is None or not expiry:
            return
        try:
            available_n, expiry_ms = int(available), int(expiry)
        except ValueError:
            return
        TRADIER_BUDGET_AVAILABLE.labels(endpoint_class=klass).set(available_n)
        allowed = headers.get("x-ratelimit-allowed", "")
        if self.redis is None:
            self._local.observe(klass, available_n, expiry_ms)
            return
        try:
            self._observe(keys=self._keys(klass)[1:], args=[available_n, expiry_ms, allowed])
        except RedisError:
            self._local.observe(klass, available_n, expiry_ms)

    def reset(self) -> None:
        """Forget the budget's state (tests, after a token change)."""
        if self.redis is not None:
            for klass in self.config.limits:
                self.redis.delete(*self._keys(klass))
        self._local = _LocalBuckets(self.config)


class _LocalBuckets:
    """The same rules in one process, for a deployment without Redis (single process only)."""

    def __init__(self, config: BudgetConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.state: dict[str, tuple[float, float]] = {}
        self.server: dict[str, tuple[int, int]] = {}

    def try_take(self, klass: str, floor: float) -> float:
        with self.lock:
            now = time.time()
            capacity = self.config.capacity(klass)
            rate = self.config.refill_per_sec(klass)
            tokens, ts = self.state.get(klass, (capacity, now))
            tokens = min(capacity, tokens + max(0.0, now - ts) * rate)
            available, expiry = self.server.get(klass, (None, 0))
            if available is not None and now * 1000 < expiry and available - 1 < floor:
                self.state[klass] = (tokens, now)
                return max(0.001, expiry / 1000 - now)
            if tokens - 1 < floor:
                self.state[klass] = (tokens, now)
                return max(0.001, (floor + 1 - tokens) / rate)
            self.state[klass] = (tokens - 1, now)
            if available is not None and now * 1000 < expiry:
                self.server[klass] = (available - 1, expiry)
            return 0.0

    def observe(self, klass: str, available: int, expiry_ms: int) -> None:
        with self.lock:
            old = self.server.get(klass)
            if old and expiry_ms < old[1]:
                return
            if old and expiry_ms == old[1]:
                available = min(available, old[0])
            self.server[klass] = (available, expiry_ms)
