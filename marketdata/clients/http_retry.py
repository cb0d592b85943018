"""Retry policy shared by the provider clients: jittered exponential backoff on 429, 5xx and
transport timeouts, honouring the server's rate-limit hints (Retry-After, X-Ratelimit-*)."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_HINT_SEC = 60.0


class ProviderError(Exception):
    """A provider answered with an error we will not retry (or retries ran out)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class RetryableHTTPError(ProviderError):
    """A 429/5xx answer: worth another attempt, after `retry_after` seconds if the server said."""

    def __init__(
        self, message: str, *, status: int, body: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


def retry_after_seconds(
    headers: httpx.Headers, *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the server asked us to wait: Retry-After (seconds or HTTP date), or Tradier's
    X-Ratelimit-Expiry (epoch ms) when X-Ratelimit-Available is 0. None when it gave no hint."""
    raw = headers.get("retry-after")
    if raw:
        try:
            return min(max(float(raw), 0.0), MAX_HINT_SEC)
        except ValueError:
            try:
                return min(max(parsedate_to_datetime(raw).timestamp() - now(), 0.0), MAX_HINT_SEC)
            except (TypeError, ValueError):
                pass
    available = headers.get("x-ratelimit-available")
    expiry = headers.get("x-ratelimit-expiry")
    if available is not None and expiry:
        try:
            if int(available) <= 0:
                return min(max(int(expiry) / 1000.0 - now(), 0.0), MAX_HINT_SEC)
        except ValueError:
            return None
    return None


class _WaitHonouringHints:
    """tenacity wait: the server's hint when given, else jittered exponential backoff."""

    def __init__(self, *, base: float, cap: float) -> None:
        self.fallback = wait_random_exponential(multiplier=base, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if hint is not None:
            return hint
        return self.fallback(state)


def _should_retry(idempotent: bool) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        if isinstance(exc, RetryableHTTPError):
            return idempotent or exc.status == 429
        return idempotent and isinstance(exc, httpx.TransportError)  # incl. timeouts

    return check


def retrying(
    *,
    max_retries: int,
    idempotent: bool = True,
    base_sec: float = 0.25,
    cap_sec: float = 8.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    """A tenacity Retrying for one logical request. `idempotent=False` is for order submission:
    a timeout or 5xx may mean the server acted, so only a 429 (refused, nothing done) is
    retried and anything else is raised for the caller to reconcile."""
    return Retrying(
        stop=stop_after_attempt(max_retries + 1),
        wait=_WaitHonouringHints(base=base_sec, cap=cap_sec),
        retry=retry_if_exception(_should_retry(idempotent)),
        sleep=sleep,
        reraise=True,
    )
