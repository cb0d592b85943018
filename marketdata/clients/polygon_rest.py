"""Polygon REST: aggregates, options chain snapshot, indices snapshot.

`options_snapshot(underlying)` is what options gating reads (volume, open interest, IV,
greeks per contract). `aggs()` returns BarData under our symbol names (I:SPX → SPX).
`USE_POLYGON_EQUITY=0` (the default; many tiers lack real-time stocks) makes equity aggregates
refuse with PolygonNotEnabled so callers fall back to Tradier; indices are always allowed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings

from autotrader_site.metrics import POLYGON_REQUEST_TOTAL
from marketdata.clients.http_retry import (
    RETRYABLE_STATUS,
    ProviderError,
    RetryableHTTPError,
    retry_after_seconds,
    retrying,
)
from marketdata.clients.symbols import is_index, our_symbol, polygon_ticker
from marketdata.types import BarData

log = logging.getLogger(__name__)

MAX_PAGES = 50


class PolygonError(ProviderError):
    pass


class PolygonRetryableError(RetryableHTTPError, PolygonError):
    pass


class PolygonNotEnabled(PolygonError):
    """Equity data from Polygon is switched off (USE_POLYGON_EQUITY=0)."""


class PolygonREST:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float = 10.0,
        max_retries: int = 3,
        use_equity: bool = False,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_key = api_key
        self.use_equity = use_equity
        self.max_retries = max_retries
        self.sleep = sleep
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    @classmethod
    def from_settings(cls, **overrides: Any) -> PolygonREST:
        kwargs: dict[str, Any] = {
            "base_url": settings.POLYGON_REST_URL,
            "api_key": settings.POLYGON_API_KEY,
            "timeout": settings.TRADIER_TIMEOUT_SEC * 2,
            "max_retries": settings.TRADIER_MAX_RETRIES,
            "use_equity": settings.USE_POLYGON_EQUITY,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def configured(self) -> bool:
        return bool(self.api_key)

    def close(self) -> None:
        self.client.close()

    # --- plumbing -----------------------------------------------------------------------
    def _get(self, url: str, *, endpoint: str, params: dict | None = None) -> dict:
        try:
            for attempt in retrying(max_retries=self.max_retries, sleep=self.sleep):
                with attempt:
                    return self._get_once(url, endpoint=endpoint, params=params)
        except httpx.TransportError as exc:
            raise PolygonError(f"Polygon {endpoint}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_once(self, url: str, *, endpoint: str, params: dict | None) -> dict:
        try:
            response = self.client.get(url, params=params)
        except httpx.TimeoutException:
            POLYGON_REQUEST_TOTAL.labels(endpoint=endpoint, status="timeout").inc()
            raise
        except httpx.TransportError:
            POLYGON_REQUEST_TOTAL.labels(endpoint=endpoint, status="error").inc()
            raise
        POLYGON_REQUEST_TOTAL.labels(endpoint=endpoint, status=str(response.status_code)).inc()
        if response.status_code in RETRYABLE_STATUS:
            raise PolygonRetryableError(
                f"Polygon {endpoint}: HTTP {response.status_code}",
                status=response.status_code,
                body=response.text[:500],
                retry_after=retry_after_seconds(response.headers),
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 or not isinstance(body, dict):
            message = body.get("message") or body.get("error") if isinstance(body, dict) else ""
            raise PolygonError(
                f"Polygon {endpoint}: HTTP {response.status_code} {message or ''}".strip(),
                status=response.status_code,
                body=response.text[:500],
            )
        if body.get("status") == "ERROR":
            raise PolygonError(
                f"Polygon {endpoint}: {body.get('error') or body.get('message')}",
                status=response.status_code,
            )
        return body

    def _pages(self, url: str, *, endpoint: str, params: dict | None) -> Iterator[dict]:
        """Follow `next_url` (which carries its own cursor) up to MAX_PAGES pages."""
        for _ in range(MAX_PAGES):
            body = self._get(url, endpoint=endpoint, params=params)
            yield body
            next_url = body.get("next_url")
            if not next_url:
                return
            url, params = next_url, None
        log.warning("polygon %s: stopped after %d pages", endpoint, MAX_PAGES)

    # --- aggregates ---------------------------------------------------------------------
    def aggs(
        self,
        symbol: str,
        *,
        start: date | datetime,
        end: date | datetime,
        multiplier: int = 1,
        timespan: str = "minute",
        source: str = "rest_backfill",
    ) -> list[BarData]:
        """Aggregates for [start, end] (dates, or datetimes sent as epoch ms), oldest first."""
        if not is_index(symbol) and not self.use_equity:
            raise PolygonNotEnabled(
                f"Polygon equity aggregates for {symbol} are off (USE_POLYGON_EQUITY=0)"
            )
        ticker = polygon_ticker(symbol)
        url = (
            f"/v2/aggs/ticker/{quote(ticker, safe=':')}/range/{multiplier}/{timespan}/"
            f"{_agg_bound(start)}/{_agg_bound(end)}"
        )
        bars: list[BarData] = []
        params = {"adjusted": "true", "sort": "asc", "limit": 50000}
        for body in self._pages(url, endpoint="aggs", params=params):
            for row in body.get("results") or []:
                bar = _agg_bar(row, symbol=our_symbol(ticker), source=source)
                if bar is not None:
                    bars.append(bar)
        return bars

    # --- snapshots ----------------------------------------------------------------------
    def options_snapshot(self, underlying: str, *, limit: int = 250) -> list[dict]:
        """Every contract of the chain, flattened: ticker, contract_type, expiration_date,
        strike, volume, open_interest, implied_volatility, greeks{delta,gamma,theta,vega},
        bid, ask, midpoint, underlying_price. Missing values are None."""
        url = f"/v3/snapshot/options/{quote(underlying.upper(), safe='')}"
        out: list[dict] = []
        for body in self._pages(url, endpoint="options_snapshot", params={"limit": limit}):
            out.extend(option_contract(row) for row in body.get("results") or [])
        return out

    def option_contract_snapshot(self, underlying: str, contract: str) -> dict:
        url = (
            f"/v3/snapshot/options/{quote(underlying.upper(), safe='')}/{quote(contract, safe=':')}"
        )
        body = self._get(url, endpoint="option_contract_snapshot")
        return option_contract(body.get("results") or {})

    def indices_snapshot(self, symbols: list[str]) -> dict[str, dict]:
        """Index values by our symbol: {"SPX": {"value":..., "session": {...}}, "NDX":
        {"error": "NOT_ENTITLED", "message": ...}}. Per-ticker errors are kept, not raised."""
        tickers = ",".join(polygon_ticker(s) for s in symbols)
        body = self._get(
            "/v3/snapshot/indices", endpoint="indices_snapshot", params={"ticker.any_of": tickers}
        )
        out: dict[str, dict] = {}
        for row in body.get("results") or []:
            ticker = row.get("ticker")
            if not ticker:
                continue
            if row.get("error"):
                log.warning("polygon indices snapshot %s: %s", ticker, row.get("error"))
                out[our_symbol(ticker)] = {"error": row["error"], "message": row.get("message")}
            else:
                out[our_symbol(ticker)] = {
                    "value": _num(row.get("value")),
                    "name": row.get("name"),
                    "market_status": row.get("market_status"),
                    "session": row.get("session") or {},
                }
        return out


def option_contract(row: dict) -> dict:
    """One options snapshot result → the flat dict options gating reads."""
    details = row.get("details") or {}
    day = row.get("day") or {}
    quote_ = row.get("last_quote") or {}
    greeks = row.get("greeks") or {}
    underlying = row.get("underlying_asset") or {}
    return {
        "ticker": details.get("ticker"),
        "contract_type": details.get("contract_type"),
        "expiration_date": details.get("expiration_date"),
        "strike": _num(details.get("strike_price")),
        "volume": _num(day.get("volume")) or 0.0,
        "open_interest": _num(row.get("open_interest")) or 0.0,
        "implied_volatility": _num(row.get("implied_volatility")),
        "greeks": {k: _num(greeks.get(k)) for k in ("delta", "gamma", "theta", "vega")},
        "bid": _num(quote_.get("bid")),
        "ask": _num(quote_.get("ask")),
        "midpoint": _num(quote_.get("midpoint")),
        "underlying_price": _num(underlying.get("price")),
    }


def options_snapshot(underlying: str) -> list[dict]:
    """Module-level convenience for options gating: the chain snapshot with settings' client."""
    client = PolygonREST.from_settings()
    try:
        return client.options_snapshot(underlying)
    finally:
        client.close()


def _num(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _agg_bound(value: date | datetime) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("aggs needs tz-aware datetimes")
        return str(int(value.timestamp() * 1000))
    return value.isoformat()


def _agg_bar(row: dict, *, symbol: str, source: str) -> BarData | None:
    try:
        ts = datetime.fromtimestamp(int(row["t"]) / 1000, tz=UTC)
        vw = row.get("vw")
        n = row.get("n")
        return BarData(
            symbol,
            ts,
            float(row["o"]),
            float(row["h"]),
            float(row["l"]),
            float(row["c"]),
            float(row.get("v") or 0),
            vwap=float(vw) if vw is not None else None,
            trades=int(n) if n is not None else None,
            source=source,
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("polygon aggs %s: skipped row %r (%s)", symbol, row, exc)
        return None
