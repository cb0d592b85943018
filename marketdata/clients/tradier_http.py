"""Tradier HTTP plumbing shared by the market-data client and the broker.

One place for: the bearer-token header, form-encoded requests, timeouts, the retry policy
(`http_retry`), the request counter `autotrader_tradier_request_total{endpoint,status}`, and
Tradier's response shapes (a collection may be one object, a list, `null` or the string "null").

    http = TradierHTTP.from_settings()
    body = http.get("/markets/quotes", endpoint="quotes", params={"symbols": "SPY"})
    quotes = as_list(dig(body, "quotes", "quote"))
    http.post("/accounts/X/orders", endpoint="orders", data={...}, idempotent=False)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from django.conf import settings

from autotrader_site.metrics import TRADIER_REQUEST_TOTAL
from marketdata.clients.http_retry import (
    RETRYABLE_STATUS,
    ProviderError,
    RetryableHTTPError,
    retry_after_seconds,
    retrying,
)
from marketdata.clients.tradier_budget import (
    BudgetExhausted,
    RequestBudget,
    default_priority,
    endpoint_class,
)


class TradierError(ProviderError):
    """Tradier refused the request (4xx other than 429), answered garbage, or retries ran out."""


class TradierRetryableError(RetryableHTTPError, TradierError):
    """429/5xx; raised to the caller only when retries are exhausted (or not allowed)."""


class TradierTransportError(TradierError):
    """Timeout or connection failure. For a non-idempotent call the request may or may not
    have reached Tradier: reconcile before trying again."""


def is_null(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() == "null")


def as_list(value: Any) -> list:
    """Tradier's "one object, a list, null or 'null'" → always a list."""
    if is_null(value):
        return []
    if isinstance(value, list):
        return [v for v in value if not is_null(v)]
    return [value]


def dig(body: Any, *keys: str) -> Any:
    """body[k1][k2]... where any level may be missing, null or "null" → None."""
    node = body
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
        if is_null(node):
            return None
    return node


def error_message(body: Any) -> str:
    """Tradier's error text from `{"errors": {"error": [...]}}` or `{"fault": {...}}`."""
    errors = dig(body, "errors", "error")
    if errors:
        return "; ".join(str(e) for e in as_list(errors))
    fault = dig(body, "fault", "faultstring")
    return str(fault) if fault else ""


class TradierHTTP:
    """A thin, retrying Tradier HTTP client. Every attempt is counted by endpoint and status."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float = 5.0,
        max_retries: int = 4,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        budget: RequestBudget | None = None,
    ) -> None:
        self.max_retries = max_retries
        self.sleep = sleep
        self.budget = budget
        self.client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    @classmethod
    def from_settings(cls, **overrides: Any) -> TradierHTTP:
        kwargs: dict[str, Any] = {
            "base_url": settings.TRADIER_BASE_URL,
            "token": settings.TRADIER_ACCESS_TOKEN,
            "timeout": settings.TRADIER_TIMEOUT_SEC,
            "max_retries": settings.TRADIER_MAX_RETRIES,
        }
        if "budget" not in overrides:
            kwargs["budget"] = RequestBudget.from_settings()
        kwargs.update(overrides)
        return cls(**kwargs)

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: dict | None = None,
        data: dict | None = None,
        idempotent: bool | None = None,
        priority: int | None = None,
    ) -> dict:
        """Send one logical request (retrying per policy) and return the decoded JSON object
        ({} for an empty or "null" body). Raises TradierError on refusal or exhausted retries.
        `idempotent` defaults to True for GET and False otherwise. Each attempt first takes a
        token of the shared budget (`priority`: tradier_budget.CRITICAL/ENTRY/READ, default
        by method); BudgetExhausted means nothing was sent."""
        if idempotent is None:
            idempotent = method.upper() == "GET"
        try:
            for attempt in retrying(
                max_retries=self.max_retries, idempotent=idempotent, sleep=self.sleep
            ):
                with attempt:
                    return self._send_once(
                        method,
                        path,
                        endpoint=endpoint,
                        params=params,
                        data=data,
                        priority=priority,
                    )
        except httpx.TransportError as exc:
            raise TradierTransportError(f"Tradier {endpoint}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def get(
        self, path: str, *, endpoint: str, params: dict | None = None, priority: int | None = None
    ) -> dict:
        return self.request("GET", path, endpoint=endpoint, params=params, priority=priority)

    def post(
        self,
        path: str,
        *,
        endpoint: str,
        data: dict | None = None,
        idempotent: bool = False,
        priority: int | None = None,
    ) -> dict:
        return self.request(
            "POST", path, endpoint=endpoint, data=data, idempotent=idempotent, priority=priority
        )

    def put(
        self, path: str, *, endpoint: str, data: dict | None = None, idempotent: bool = False
    ) -> dict:
        return self.request("PUT", path, endpoint=endpoint, data=data, idempotent=idempotent)

    def delete(self, path: str, *, endpoint: str, idempotent: bool = True) -> dict:
        return self.request("DELETE", path, endpoint=endpoint, idempotent=idempotent)

    def _send_once(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: dict | None,
        data: dict | None,
        priority: int | None = None,
    ) -> dict:
        klass = endpoint_class(method, path)
        if self.budget is not None:
            if priority is None:
                priority = default_priority(method, klass)
            try:
                self.budget.acquire(klass, priority)
            except BudgetExhausted as exc:
                TRADIER_REQUEST_TOTAL.labels(endpoint=endpoint, status="budget").inc()
                raise TradierRetryableError(
                    f"Tradier {endpoint}: {exc}", status=429, body="budget", retry_after=1.0
                ) from exc
        try:
            response = self.client.request(method, path.lstrip("/"), params=params, data=data)
        except httpx.TimeoutException:
            TRADIER_REQUEST_TOTAL.labels(endpoint=endpoint, status="timeout").inc()
            raise
        except httpx.TransportError:
            TRADIER_REQUEST_TOTAL.labels(endpoint=endpoint, status="error").inc()
            raise
        TRADIER_REQUEST_TOTAL.labels(endpoint=endpoint, status=str(response.status_code)).inc()
        if self.budget is not None:
            self.budget.observe(klass, response.headers)
        body = _decode(response)
        if response.status_code in RETRYABLE_STATUS:
            raise TradierRetryableError(
                f"Tradier {endpoint}: HTTP {response.status_code}",
                status=response.status_code,
                body=response.text[:500],
                retry_after=retry_after_seconds(response.headers),
            )
        if response.status_code >= 400:
            detail = error_message(body) or response.text[:200]
            raise TradierError(
                f"Tradier {endpoint}: HTTP {response.status_code} {detail}".strip(),
                status=response.status_code,
                body=response.text[:500],
            )
        if not isinstance(body, dict):
            raise TradierError(
                f"Tradier {endpoint}: expected a JSON object, got {type(body).__name__}",
                status=response.status_code,
                body=response.text[:500],
            )
        message = error_message(body)
        if message:  # Tradier sometimes answers 200 with {"errors": ...}
            raise TradierError(f"Tradier {endpoint}: {message}", status=response.status_code)
        return body


def _decode(response: httpx.Response) -> Any:
    text = response.text.strip()
    if not text or text.lower() == "null":
        return {}
    try:
        return json.loads(text)
    except ValueError:
        if response.status_code >= 400:
            return {}
        raise TradierError(
            f"Tradier answered non-JSON (HTTP {response.status_code}): {text[:120]!r}",
            status=response.status_code,
            body=text[:500],
        ) from None
