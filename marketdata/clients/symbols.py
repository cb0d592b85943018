"""Our symbols vs Polygon's tickers: indices carry an `I:` prefix and stream on /indices."""

from __future__ import annotations

INDEX_SYMBOLS = frozenset({"SPX", "NDX", "RUT", "VIX", "DJI", "XSP"})


def is_index(symbol: str) -> bool:
    return symbol.upper().removeprefix("I:") in INDEX_SYMBOLS


def polygon_ticker(symbol: str) -> str:
    """SPX → I:SPX, SPY → SPY."""
    sym = symbol.upper()
    if sym.startswith("I:"):
        return sym
    return f"I:{sym}" if sym in INDEX_SYMBOLS else sym


def our_symbol(ticker: str) -> str:
    """I:SPX → SPX, SPY → SPY."""
    return ticker.upper().removeprefix("I:")


def cluster_of(symbol: str) -> str:
    return "indices" if is_index(symbol) else "stocks"
