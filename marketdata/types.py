"""Plain value types passed between the feeds, the bar builder and the strategy engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BarData:
    """A closed 1-minute bar; `ts` is the bar's start, timezone-aware UTC."""

    symbol: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    vwap: float | None = None
    trades: int | None = None
    source: str = "stream"
    # seconds of this minute may be missing (reconnect, lag): the stored row is replaced by the
    # provider's minute bar from REST once it is known (marketdata.healing)
    provisional: bool = False

    def as_event(self) -> dict:
        """JSON-safe form for the channel layer and Celery."""
        return {
            "symbol": self.symbol,
            "ts": self.ts.isoformat(),
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "vwap": self.vwap,
            "trades": self.trades,
            "source": self.source,
            "provisional": self.provisional,
        }

    @classmethod
    def from_event(cls, data: dict) -> BarData:
        return cls(
            symbol=data["symbol"],
            ts=datetime.fromisoformat(data["ts"]),
            open=float(data["open"]),
            high=float(data["high"]),
            low=float(data["low"]),
            close=float(data["close"]),
            volume=float(data.get("volume") or 0.0),
            vwap=data.get("vwap"),
            trades=data.get("trades"),
            source=data.get("source", "stream"),
            provisional=bool(data.get("provisional", False)),
        )
