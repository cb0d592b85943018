"""The risk rules: a pure function of the intent, the exposure snapshot, the configuration
and the clock. Every rule runs and reports, so a trader sees every reason at once.

Stable codes (a check's `code` names the rule by its failure; `passed` says whether it held):
TRADING_HALTED, TRADING_REDUCING, MARKET_HOLIDAY, MARKET_CLOSED, WINDOW_CLOSED,
SYMBOL_NOT_WHITELISTED, SYMBOL_BLACKLISTED, SYMBOL_DISABLED, MAX_CONCURRENT, MAX_OPEN_ORDERS,
MAX_POSITIONS_PER_SYMBOL, NOTIONAL_EXCEEDS_MAX, NOTIONAL_EXCEEDS_SYMBOL_MAX, INSUFFICIENT_CASH,
DAILY_LOSS_LIMIT, STOP_INVALID, QTY_ZERO.
"""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from functools import lru_cache

from risk.calendar import NY, Session, session_at, trading_window
from risk.config import RiskConfig, SymbolParams, symbol_params
from risk.sizing import position_size
from risk.types import Check, Decision, Exposure, Intent

CODES = (
    "TRADING_HALTED",
    "TRADING_REDUCING",
    "MARKET_HOLIDAY",
    "MARKET_CLOSED",
    "WINDOW_CLOSED",
    "SYMBOL_NOT_WHITELISTED",
    "SYMBOL_BLACKLISTED",
    "SYMBOL_DISABLED",
    "MAX_CONCURRENT",
    "MAX_OPEN_ORDERS",
    "MAX_POSITIONS_PER_SYMBOL",
    "NOTIONAL_EXCEEDS_MAX",
    "NOTIONAL_EXCEEDS_SYMBOL_MAX",
    "INSUFFICIENT_CASH",
    "DAILY_LOSS_LIMIT",
    "STOP_INVALID",
    "QTY_ZERO",
)


def _state_checks(exposure: Exposure) -> list[Check]:
    state = exposure.trading_state
    return [
        Check("TRADING_HALTED", state != "HALTED", f"trading state is {state}"),
        Check(
            "TRADING_REDUCING",
            state != "REDUCING",
            "REDUCING: exits only" if state == "REDUCING" else f"trading state is {state}",
        ),
    ]


@lru_cache(maxsize=4096)
def _window(session: Session, start: time, end: time) -> tuple[datetime, datetime, str]:
    w_start, w_end = trading_window(session, start, end)
    return w_start, w_end, f"{w_start.astimezone(NY):%H:%M}-{w_end.astimezone(NY):%H:%M}"


@lru_cache(maxsize=1024)
def _session_label(session: Session) -> str:
    early = " (early close)" if session.early_close else ""
    return f"09:30-{session.close.astimezone(NY):%H:%M}{early}"


def _window_checks(intent: Intent, config: RiskConfig, params: SymbolParams, now: datetime):
    local = now.astimezone(NY)
    session = session_at(now)
    if session is None:
        weekday = local.weekday() < 5
        return [
            Check(
                "MARKET_HOLIDAY",
                False,
                f"{local:%Y-%m-%d} is an exchange holiday"
                if weekday
                else f"{local:%Y-%m-%d} is a weekend",
            )
        ]
    clock_label = f"{local:%H:%M} ET"
    checks = [
        Check("MARKET_HOLIDAY", True, "trading day"),
        Check(
            "MARKET_CLOSED",
            session.open <= now < session.close,
            f"{clock_label} vs session {_session_label(session)}",
        ),
    ]
    if intent.policy_window is not None:
        start, end = intent.policy_window
        source = "session policy"
    else:
        start, end = config.window_start, config.window_end
        source = "TRADING_WINDOW"
    w_start, w_end, label = _window(session, start, end)
    inside = w_start <= now <= w_end
    message = f"{clock_label} vs {source} {label}"
    if params.window_start and params.window_end:
        s_start, s_end, s_label = _window(session, params.window_start, params.window_end)
        inside = inside and s_start <= now <= s_end
        message += f"; {params.symbol} window {s_label}"
    checks.append(Check("WINDOW_CLOSED", inside, message))
    return checks


def _symbol_checks(symbol: str, config: RiskConfig, params: SymbolParams) -> list[Check]:
    return [
        Check(
            "SYMBOL_NOT_WHITELISTED",
            not config.whitelist or symbol in config.whitelist,
            "no whitelist" if not config.whitelist else f"whitelist {sorted(config.whitelist)}",
        ),
        Check(
            "SYMBOL_BLACKLISTED",
            symbol not in config.blacklist,
            f"{symbol} blacklisted" if symbol in config.blacklist else "not blacklisted",
        ),
        Check(
            "SYMBOL_DISABLED",
            params.enabled,
            f"{symbol} disabled by override" if not params.enabled else "enabled",
        ),
    ]


def _limit(code: str, count: int, limit: int, what: str) -> Check:
    if limit <= 0 and code == "MAX_POSITIONS_PER_SYMBOL":
        return Check(code, True, f"{count} {what}; no limit")
    return Check(code, count < limit, f"{count} {what} (limit {limit})")


def evaluate(
    intent: Intent,
    exposure: Exposure,
    config: RiskConfig,
    now: datetime,
    params: SymbolParams | None = None,
) -> Decision:
    """Run every rule for an entry `intent`. Returns the decision with all checks; the
    quantity is the intent's (if given) or the risk-based size."""
    symbol = intent.symbol.upper()
    params = params or symbol_params(symbol, config)
    checks: list[Check] = []
    checks += _state_checks(exposure)
    checks += _window_checks(intent, config, params, now)
    checks += _symbol_checks(symbol, config, params)
    checks.append(
        _limit("MAX_CONCURRENT", exposure.open_trades, config.max_concurrent, "open trades")
    )
    checks.append(
        _limit("MAX_OPEN_ORDERS", exposure.open_orders, config.max_open_orders, "working orders")
    )
    checks.append(
        _limit(
            "MAX_POSITIONS_PER_SYMBOL",
            exposure.trades_by_symbol.get(symbol, 0),
            config.max_positions_per_symbol,
            f"open trades in {symbol}",
        )
    )

    entry = Decimal(intent.entry_price)
    stop = None if intent.stop_price is None else Decimal(intent.stop_price)
    if stop is not None:
        valid = stop < entry if intent.side == "buy" else stop > entry
        checks.append(Check("STOP_INVALID", valid, f"stop {stop} vs entry {entry}"))
    if intent.qty is not None:
        qty, how = int(intent.qty), "requested"
    else:
        symbol_cap = params.max_notional_usd
        global_cap = config.max_order_notional_usd or None
        caps = [c for c in (symbol_cap, global_cap) if c]
        sized = position_size(
            entry=entry,
            stop=stop,
            risk_usd=config.risk_per_trade_usd,
            fixed_qty=params.qty,
            max_notional=min(caps) if caps else None,
            buying_power=exposure.buying_power,
        )
        qty, how = sized.qty, sized.reason
    checks.append(Check("QTY_ZERO", qty >= 1, f"qty {qty}: {how}"))

    notional = entry * max(qty, 0)
    cap = config.max_order_notional_usd
    checks.append(
        Check(
            "NOTIONAL_EXCEEDS_MAX",
            not cap or notional <= cap,
            f"notional {notional:.2f} (cap {cap or 'none'})",
        )
    )
    if params.max_notional_usd is not None:
        held = exposure.notional_by_symbol.get(symbol, Decimal("0"))
        checks.append(
            Check(
                "NOTIONAL_EXCEEDS_SYMBOL_MAX",
                held + notional <= params.max_notional_usd,
                f"{symbol} notional {held + notional:.2f} (cap {params.max_notional_usd})",
            )
        )
    if exposure.cash is not None and config.min_cash_usd > 0:
        checks.append(
            Check(
                "INSUFFICIENT_CASH",
                exposure.cash >= config.min_cash_usd,
                f"cash {exposure.cash:.2f} vs MIN_CASH_USD {config.min_cash_usd}",
            )
        )
    elif config.min_cash_usd > 0:
        checks.append(Check("INSUFFICIENT_CASH", False, "cash balance unknown"))
    if config.max_daily_loss_usd > 0:
        checks.append(
            Check(
                "DAILY_LOSS_LIMIT",
                exposure.day_pnl > -config.max_daily_loss_usd,
                f"day P&L {exposure.day_pnl:.2f} (limit -{config.max_daily_loss_usd})",
            )
        )
    approved = all(c.passed for c in checks)
    return Decision(approved=approved, qty=max(qty, 0), checks=tuple(checks), notional=notional)
