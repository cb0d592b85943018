"""Tradier market data: quotes, timesales, daily history, market clock and calendar.

Everything comes back as plain dicts/value objects with Tradier's shape quirks removed;
`timesales()` returns BarData (UTC) ready to store as `source=tradier` or `rest_backfill`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from marketdata.clients.tradier_http import TradierHTTP, as_list, dig
from marketdata.types import BarData

log = logging.getLogger(__name__)

TIMESALES_INTERVALS = {"1min", "5min", "15min"}


@dataclass(frozen=True)
class Quotes:
    """Quotes by symbol, plus the symbols Tradier did not recognise."""

    quotes: dict[str, dict] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)


class MarketDataSource(Protocol):
    """What the rest of the code needs from a market-data REST provider."""

    def quotes(self, symbols: list[str], *, greeks: bool = False) -> Quotes: ...

    def timesales(
        self, symbol: str, *, start: datetime, end: datetime, interval: str = "1min"
    ) -> list[BarData]: ...


class TradierMarketData:
    def __init__(self, http: TradierHTTP | None = None) -> None:
        self.http = http or TradierHTTP.from_settings()

    # --- quotes -------------------------------------------------------------------------
    def quotes(self, symbols: list[str], *, greeks: bool = False) -> Quotes:
        """Quotes for one or many symbols; unknown symbols are listed in `unmatched`."""
        if not symbols:
            return Quotes()
        body = self.http.get(
            "/markets/quotes",
            endpoint="quotes",
            params={"symbols": ",".join(s.upper() for s in symbols), "greeks": str(greeks).lower()},
        )
        quotes = {q["symbol"]: q for q in as_list(dig(body, "quotes", "quote")) if "symbol" in q}
        unmatched = [
            u["symbol"] if isinstance(u, dict) else str(u)
            for u in as_list(dig(body, "quotes", "unmatched_symbols", "symbol"))
        ]
        return Quotes(quotes=quotes, unmatched=[s for s in unmatched if s])

    def quote(self, symbol: str) -> dict | None:
        return self.quotes([symbol]).quotes.get(symbol.upper())

    # --- bars ---------------------------------------------------------------------------
    def timesales(
        self,
        symbol: str,
        *,
        start: datetime,
        end: datetime,
        interval: str = "1min",
        session_filter: str = "open",
        source: str = "tradier",
    ) -> list[BarData]:
        """Intraday bars in [start, end]; `start`/`end` are tz-aware (sent as New York time,
        which is what Tradier expects). Rows without a usable timestamp or price are skipped."""
        if interval not in TIMESALES_INTERVALS:
            raise ValueError(f"interval {interval!r} not in {sorted(TIMESALES_INTERVALS)}")
        body = self.http.get(
            "/markets/timesales",
            endpoint="timesales",
            params={
                "symbol": symbol.upper(),
                "interval": interval,
                "start": _ny(start).strftime("%Y-%m-%d %H:%M"),
                "end": _ny(end).strftime("%Y-%m-%d %H:%M"),
                "session_filter": session_filter,
            },
        )
        bars = []
        for row in as_list(dig(body, "series", "data")):
            bar = _timesale_bar(row, symbol=symbol.upper(), source=source)
            if bar is not None:
                bars.append(bar)
        return bars

    def history(
        self, symbol: str, *, start: date, end: date, interval: str = "daily"
    ) -> list[dict]:
        """Daily (or weekly/monthly) history rows: date (a `date`), open, high, low, close,
        volume."""
        body = self.http.get(
            "/markets/history",
            endpoint="history",
            params={
                "symbol": symbol.upper(),
                "interval": interval,
                "start": start.isoformat(),
                "end": end.isoformat(),
            },
        )
        rows = []
        for row in as_list(dig(body, "history", "day")):
            try:
                rows.append(
                    {
                        "date": date.fromisoformat(row["date"]),
                        "open": float(row["open"]),
                        "high": float(row["high"]),
                        "low": float(row["low"]),
                        "close": float(row["close"]),
                        "volume": float(row.get("volume") or 0),
                    }
                )
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("tradier history %s: skipped row %r (%s)", symbol, row, exc)
        return rows

    # --- market status ------------------------------------------------------------------
    def clock(self) -> dict:
        """The market clock: state (open/closed/premarket/postmarket), next_state,
        next_change, description, date, timestamp."""
        return dict(dig(self.http.get("/markets/clock", endpoint="clock"), "clock") or {})

    def calendar(self, *, year: int, month: int) -> list[dict]:
        """Days of one month: date, status (open/closed), description, and for open days
        `open`/`premarket`/`postmarket` {start, end} in New York time."""
        body = self.http.get(
            "/markets/calendar",
            endpoint="calendar",
            params={"year": year, "month": f"{month:02d}"},
        )
        return [dict(d) for d in as_list(dig(body, "calendar", "days", "day"))]


def _ny(ts: datetime) -> datetime:
    from zoneinfo import ZoneInfo

    if ts.tzinfo is None:
        raise ValueError("timesales needs tz-aware datetimes")
    return ts.astimezone(ZoneInfo("America/New_York"))


def _timesale_bar(row: Any, *, symbol: str, source: str) -> BarData | None:
    """One timesales row → BarData. `timestamp` (epoch s) is authoritative; `time` is New
    York local time without an offset, used only when `timestamp` is missing."""
    try:
        if row.get("timestamp") is not None:
            ts = datetime.fromtimestamp(int(row["timestamp"]), tz=UTC)
        else:
            from zoneinfo import ZoneInfo

            local = datetime.fromisoformat(row["time"])
            ts = local.replace(tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)
        price = row.get("price")
        o = float(row.get("open", price))
        h = float(row.get("high", price))
        lo = float(row.get("low", price))
        c = float(row.get("close", price))
        vwap = row.get("vwap")
        return BarData(
            symbol,
            ts,
            o,
            h,
            lo,
            c,
            float(row.get("volume") or 0),
            vwap=float(vwap) if vwap is not None else None,
            source=source,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        log.warning("tradier timesales %s: skipped row %r (%s)", symbol, row, exc)
        return None
