"""The exit manager's inputs from the live path: when positions must be flat (the session
calendar), whether the EMA crossed down (the strategy engine's stored features), and
`exits_manage`, the lifecycle's exit pass over the ORM ledger. The rules themselves are
`trading.core.exits.exit_decide` (pure) and `trading.core.lifecycle.manage_exits`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from trading.core import lifecycle
from trading.core.exits import ExitAction, ExitState, exit_decide  # noqa: F401 - re-exported
from trading.core.fills import BarPrices

log = logging.getLogger(__name__)


def flat_time(now: datetime, minutes_before_close: int) -> datetime | None:
    """When positions must be flat today: the session's close minus the margin (early closes
    included); None on a day without a session."""
    from risk.calendar import session_at

    session = session_at(now)
    if session is None:
        return None
    return session.close - timedelta(minutes=minutes_before_close)


def ema_crossed_down(symbol: str, at: datetime) -> bool:
    """ema_20 crossed below ema_50 on the signal symbol's latest two evaluated bars up to
    `at` (from the strategy engine's FeatureSnapshot rows)."""
    from strategies.models import FeatureSnapshot

    rows = list(
        FeatureSnapshot.objects.filter(symbol=symbol, bar_ts__lte=at)
        .order_by("-bar_ts")
        .values_list("features", flat=True)[:2]
    )
    if len(rows) < 2:
        return False
    try:
        now_fast, now_slow = float(rows[0]["ema_20"]), float(rows[0]["ema_50"])
        prev_fast, prev_slow = float(rows[1]["ema_20"]), float(rows[1]["ema_50"])
    except (KeyError, TypeError, ValueError):
        return False
    return prev_fast >= prev_slow and now_fast < now_slow


def exits_manage(
    *,
    now: datetime,
    symbol: str | None = None,
    bar=None,
    config=None,
    broker=None,
    book: str = "account",
) -> list[tuple[int, str]]:
    """Apply the exit rules to every open trade (of `symbol`'s execution symbol) and make
    sure each keeps its protective stop (`trading.core.lifecycle.manage_exits` over the ORM
    ledger of `book`). Returns [(trade id, action)]: "checked" for every open trade, then each
    action."""
    from django.conf import settings

    from risk.config import RiskConfig
    from trading.orm_ledger import OrmLedger

    config = config or RiskConfig.from_settings()
    return lifecycle.manage_exits(
        OrmLedger(broker, book=book),
        now=now,
        symbol=symbol,
        bar=BarPrices.of(bar) if bar is not None else None,
        flat_at=flat_time(now, settings.FLATTEN_BEFORE_CLOSE_MIN),
        partial_exit_pct=config.partial_exit_pct,
        cross_down=(lambda sym: ema_crossed_down(sym, bar.ts)) if bar is not None else None,
    )
