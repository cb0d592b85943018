"""Reads behind the live dashboard: one JSON-safe snapshot of the account and the journal, and the
chart series (candles, VWAP and bands, EMAs, trade markers) of a symbol.

Everything here is read-only and returns plain dicts/lists so the page view and the websocket
consumer send the very same shapes. Chart times are UNIX seconds shifted to New York wall time,
because the chart library draws its axis in UTC and a scalper reads the tape in ET.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, Max, Q, Sum

from autotrader_site.clock import clock
from marketdata.models import Bar
from marketdata.selectors import bars_as_data
from marketdata.types import BarData
from risk.selectors import trading_state_get
from strategies.features.engine import FeatureEngine
from strategies.models import Book, Signal
from trading.models import (
    WORKING_STATUSES,
    AccountSnapshot,
    Fill,
    Order,
    Position,
    Trade,
    TradeStatus,
)

ET = ZoneInfo("America/New_York")
CHART_BARS = 390 * 2  # two regular sessions of 1-minute bars
CHART_LINES = (
    "vwap",
    "vwap_upper_1",
    "vwap_lower_1",
    "vwap_upper_2",
    "vwap_lower_2",
    "ema_20",
    "ema_50",
)
SIGNAL_FEED = 40
RECENT_ORDERS = 25
RECENT_FILLS = 25
MAX_CHART_SYMBOLS = 6


def _money(value) -> str | None:
    if value is None:
        return None
    return str(Decimal(value).quantize(Decimal("0.01")))


def _price(value) -> str | None:
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def chart_time(ts: datetime) -> int:
    """UNIX seconds of `ts` as New York wall time (what the chart axis shows)."""
    offset = ts.astimezone(ET).utcoffset() or timedelta(0)
    return int(ts.timestamp() + offset.total_seconds())


# --- account and journal ---------------------------------------------------------------------
def account_summary(*, now: datetime | None = None) -> dict:
    """Equity, cash and today's P&L. Equity and cash come from the newest broker snapshot;
    day P&L is recomputed from the ledger (today's realized trades plus open positions marked
    at their last price) so it moves with every bar instead of every snapshot."""
    now = now or clock.now()
    session_start = datetime.combine(now.astimezone(ET).date(), datetime.min.time(), ET)
    # the account's book only: the paper book of paper-mode setups is not the account
    account_positions = Position.objects.filter(book=Book.ACCOUNT)
    realized = Trade.objects.filter(
        status=TradeStatus.CLOSED, closed_at__gte=session_start, book=Book.ACCOUNT
    ).aggregate(total=Sum("realized_pnl"))["total"] or Decimal(0)
    unrealized = Decimal(0)
    open_positions = 0
    for position in account_positions.exclude(qty=0):
        open_positions += 1
        unrealized += Decimal(position.unrealized_pnl)
    snapshot = AccountSnapshot.objects.order_by("-ts").first()
    if snapshot is not None:
        equity, cash, as_of, source = snapshot.equity, snapshot.cash, snapshot.ts, snapshot.broker
    else:
        # No broker snapshot yet (a fresh paper session): the paper account's own arithmetic.
        all_realized = Decimal(account_positions.aggregate(total=Sum("realized_pnl"))["total"] or 0)
        held = account_positions.exclude(qty=0)
        cost = sum((p.avg_price * p.qty for p in held), start=Decimal(0))
        cash = settings.PAPER_STARTING_CASH_USD + all_realized - cost
        equity = settings.PAPER_STARTING_CASH_USD + all_realized + unrealized
        as_of, source = None, "ledger"
    return {
        "equity": _money(equity),
        "cash": _money(cash),
        "day_pnl": _money(realized + unrealized),
        "realized_today": _money(realized),
        "unrealized": _money(unrealized),
        "open_positions": open_positions,
        "as_of": _iso(as_of),
        "source": source,
        "dry_run": settings.DRY_RUN,
    }


def trading_state_summary() -> dict:
    state = trading_state_get()
    return {
        "state": state.state,
        "reason": state.reason,
        "changed_at": _iso(state.changed_at) if state.pk else None,
        "changed_by": state.changed_by.get_username() if state.changed_by_id else "",
    }


def open_trades() -> list[dict]:
    """Managed trades not yet closed, with their exit plan."""
    rows = Trade.objects.filter(
        status__in=(TradeStatus.PENDING, TradeStatus.OPEN), book=Book.ACCOUNT
    ).order_by("-created_at", "-id")[:50]
    last_prices = dict(
        Position.objects.filter(book=Book.ACCOUNT).values_list("symbol", "last_price")
    )
    out = []
    for t in rows:
        last = last_prices.get(t.execution_symbol)
        unrealized = None
        if last is not None and t.entry_price is not None and t.remaining_qty:
            sign = 1 if t.side == "buy" else -1
            unrealized = _money((last - t.entry_price) * t.remaining_qty * sign)
        out.append(
            {
                "id": t.pk,
                "setup": t.setup,
                "symbol": t.symbol,
                "execution_symbol": t.execution_symbol,
                "side": t.side,
                "qty": t.qty,
                "remaining_qty": t.remaining_qty,
                "status": t.status,
                "entry_price": _price(t.entry_price),
                "stop_price": _price(t.stop_price),
                "initial_stop_price": _price(t.initial_stop_price),
                "target_one": _price(t.target_one),
                "target_two": _price(t.target_two),
                "partial_done": t.partial_done,
                "trail_pct": _price(t.trail_pct),
                "trail_active": t.trail_active,
                "trail_high": _price(t.trail_high),
                "deadline": _iso(t.deadline),
                "opened_at": _iso(t.opened_at),
                "last_price": _price(last),
                "unrealized": unrealized,
            }
        )
    return out


def recent_orders(*, limit: int = RECENT_ORDERS) -> list[dict]:
    return [
        {
            "id": o.pk,
            "created_at": _iso(o.created_at),
            "symbol": o.symbol,
            "side": o.side,
            "qty": o.qty,
            "type": o.order_type,
            "role": o.role,
            "price": _price(o.price),
            "stop_price": _price(o.stop_price),
            "status": o.status,
            "working": o.status in WORKING_STATUSES,
            "filled_qty": o.filled_qty,
            "avg_fill_price": _price(o.avg_fill_price),
            "reject_reason": o.reject_reason,
        }
        for o in Order.objects.filter(book=Book.ACCOUNT).order_by("-created_at", "-id")[:limit]
    ]


def recent_fills(*, limit: int = RECENT_FILLS) -> list[dict]:
    return [
        {
            "id": f.pk,
            "ts": _iso(f.ts),
            "symbol": f.symbol,
            "side": f.side,
            "qty": f.qty,
            "price": _price(f.price),
            "order_id": f.order_id,
        }
        for f in Fill.objects.filter(order__book=Book.ACCOUNT).order_by("-ts", "-id")[:limit]
    ]


def _failed_checks(signal: Signal) -> list[dict]:
    failed = []
    for check in signal.checks or ():
        if isinstance(check, dict) and not check.get("passed", True):
            failed.append(
                {
                    "stage": check.get("stage", ""),
                    "code": check.get("code", ""),
                    "message": check.get("message", ""),
                }
            )
    if not failed:  # older rows may only carry the codes
        failed = [{"stage": "", "code": str(code), "message": ""} for code in signal.reasons or ()]
    return failed


def signal_feed(*, limit: int = SIGNAL_FEED) -> list[dict]:
    """Newest signals first, each with the reasons it was blocked (empty when it passed)."""
    return [
        {
            "id": s.pk,
            "bar_ts": _iso(s.bar_ts),
            "setup": s.setup,
            "symbol": s.symbol,
            "execution_symbol": s.execution_symbol,
            "side": s.side,
            "outcome": s.outcome,
            "blocked": [c for c in _failed_checks(s)],
            "entry_price": _price(s.entry_price),
            "stop_price": _price(s.stop_price),
            "target_one": _price(s.target_one),
            "target_two": _price(s.target_two),
            "qty": s.qty,
            "score": s.score if s.score is None or math.isfinite(s.score) else None,
        }
        for s in Signal.objects.order_by("-bar_ts", "-id")[:limit]
    ]


def dashboard_symbols() -> list[str]:
    """Symbols to chart: those with bars in the newest day of data, in SYMBOLS order first."""
    newest = Bar.objects.aggregate(last=Max("ts"))["last"]
    if newest is None:
        return list(settings.SYMBOLS[:MAX_CHART_SYMBOLS])
    recent = set(
        Bar.objects.filter(ts__gte=newest - timedelta(days=1))
        .values_list("symbol", flat=True)
        .distinct()
    )
    ordered = [s for s in settings.SYMBOLS if s in recent]
    ordered += sorted(recent - set(ordered))
    return ordered[:MAX_CHART_SYMBOLS]


def panel_fingerprint() -> tuple:
    """A cheap value that changes whenever anything on the panels changes (polled each second)."""
    signals = Signal.objects.aggregate(n=Count("id"), last=Max("updated_at"))
    orders = Order.objects.aggregate(n=Count("id"), last=Max("updated_at"))
    fills = Fill.objects.aggregate(n=Count("id"), last=Max("id"))
    trades = Trade.objects.aggregate(
        n=Count("id"),
        open=Count("id", filter=Q(status__in=(TradeStatus.PENDING, TradeStatus.OPEN))),
        remaining=Sum("remaining_qty"),
        stops=Sum("stop_price"),
        closed=Max("closed_at"),
    )
    positions = Position.objects.aggregate(last=Max("updated_at"))
    snapshot = AccountSnapshot.objects.aggregate(last=Max("ts"))
    state = trading_state_get()
    return (
        tuple(signals.values()),
        tuple(orders.values()),
        tuple(fills.values()),
        tuple(trades.values()),
        positions["last"],
        snapshot["last"],
        state.state,
        state.reason,
        state.changed_at if state.pk else None,
    )


def panel_snapshot(*, symbols: list[str] | None = None) -> dict:
    """Everything on the page except the candles, in one consistent read."""
    symbols = symbols or []
    return {
        "now": _iso(clock.now()),
        "account": account_summary(),
        "trading_state": trading_state_summary(),
        "trades": open_trades(),
        "orders": recent_orders(),
        "fills": recent_fills(),
        "signals": signal_feed(),
        "markers": {symbol: chart_markers(symbol=symbol) for symbol in symbols},
    }


# --- chart -----------------------------------------------------------------------------------
def chart_candle(bar: BarData) -> dict:
    return {
        "time": chart_time(bar.ts),
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
    }


def chart_points(time_: int, row: dict | None) -> dict:
    """The indicator values of one bar that exist (warm-up NaNs are left out)."""
    if row is None:
        return {}
    points = {}
    for name in CHART_LINES:
        value = row.get(name)
        if value is not None and math.isfinite(value):
            points[name] = round(float(value), 4)
    return points


class ChartSeries:
    """The candles and indicator lines of one symbol, extended bar by bar (O(1) per bar) with
    the same feature engine the strategies use, so the chart shows what the setups saw."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.engine = FeatureEngine(
            symbol, lookback_days=settings.LOOKBACK_DAYS, lookback_min=settings.LOOKBACK_MIN
        )
        self.last_ts: datetime | None = None
        self.has_lines = False

    def push(self, bar: BarData) -> dict | None:
        """Feed one closed bar; returns {candle, lines, session_break} or None for a bar
        already seen. `session_break` marks a session's first bar: the page hides the line
        segments joining it to the previous session, so the session-anchored VWAP and its
        bands restart instead of being drawn across the night."""
        if self.last_ts is not None and bar.ts <= self.last_ts:
            return None
        self.last_ts = bar.ts
        row = self.engine.update(bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume)
        candle = chart_candle(bar)
        session_break = False
        if row is not None:
            session_break = row["minute"] == 0 and self.has_lines
            self.has_lines = True
        return {
            "candle": candle,
            "lines": chart_points(candle["time"], row),
            "session_break": session_break,
        }

    def load(self, *, limit: int = CHART_BARS) -> dict:
        """Seed from the stored bars; returns the full series for the first paint."""
        candles: list[dict] = []
        lines: dict[str, list[dict]] = {name: [] for name in CHART_LINES}
        for bar in bars_as_data(symbol=self.symbol, limit=limit):
            point = self.push(bar)
            if point is None:
                continue
            candles.append(point["candle"])
            if point["session_break"]:
                for series in lines.values():
                    if series:  # a point's colour paints the segment that follows it
                        series[-1]["color"] = "transparent"
            for name, value in point["lines"].items():
                lines[name].append({"time": point["candle"]["time"], "value": value})
        return {
            "symbol": self.symbol,
            "candles": candles,
            "lines": lines,
            "markers": chart_markers(symbol=self.symbol),
        }

    def new_bars(self) -> list[BarData]:
        """Stored bars newer than the last one pushed (the polling path when the channel layer
        does not reach this process)."""
        if self.last_ts is None:
            return bars_as_data(symbol=self.symbol, limit=CHART_BARS)
        return bars_as_data(symbol=self.symbol, start=self.last_ts + timedelta(seconds=1))


def chart_markers(*, symbol: str, limit: int = 200) -> list[dict]:
    """Fills (arrows at the fill price's bar) and signals (dots) of `symbol`, oldest first."""
    markers: list[dict] = []
    fills = Fill.objects.filter(symbol=symbol, order__book=Book.ACCOUNT)
    for fill in fills.order_by("-ts")[:limit]:
        bar_start = fill.ts.replace(second=0, microsecond=0)
        buy = fill.side.startswith("buy")
        markers.append(
            {  # at the fill price itself: the arrow shows where the order really traded
                "time": chart_time(bar_start),
                "position": "atPriceBottom" if buy else "atPriceTop",
                "price": float(fill.price),
                "shape": "arrowUp" if buy else "arrowDown",
                "color": "#1e88e5" if buy else "#f57c00",
                "size": 1,
            }
        )
    for signal in Signal.objects.filter(symbol=symbol).order_by("-bar_ts")[:limit]:
        passed = signal.outcome in ("approved", "dry_run", "submitted")
        markers.append(
            {
                "time": chart_time(signal.bar_ts),
                "position": "belowBar",
                "shape": "circle",
                "color": "#26a69a" if passed else "#9e9e9e",
                "size": 0.6,
            }
        )
    markers.sort(key=lambda m: m["time"])
    return markers
