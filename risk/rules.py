"""The risk rules: a pure function of the intent, the exposure snapshot, the configuration
and the clock. Every rule runs and reports, so a trader sees every reason at once.

Stable codes (a check's `code` names the rule by its failure; `passed` says whether it held):
TRADING_HALTED, TRADING_REDUCING, MARKET_HOLIDAY, MARKET_CLOSED, WINDOW_CLOSED,
SYMBOL_NOT_WHITELISTED, SYMBOL_BLACKLISTED, SYMBOL_DISABLED, MAX_CONCURRENT, MAX_OPEN_ORDERS,
MAX_POSITIONS_PER_SYMBOL, NOTIONAL_EXCEEDS_MAX, NOTIONAL_EXCEEDS_SYMBOL_MAX, INSUFFICIENT_CASH,
DAILY_LOSS_LIMIT, STOP_INVALID, QTY_ZERO, GROSS_EXPOSURE_EXCEEDS_MAX, DUPLICATE_EXPOSURE,
TARGET_BELOW_COSTS, MIN_STOP_DISTANCE (informational: the stop was widened to the floor).

Money: cash is (the smaller of cash and buying power) minus what entries in flight reserve;
notional per order, per symbol and gross counts positions plus pending entries at their
worst-case price; sizing includes the symbol's costs (risk.costs) so a stop-out loses at most
the risk budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from functools import lru_cache

from risk.calendar import NY, Session, session_at, trading_window
from risk.config import RiskConfig, SymbolParams, symbol_params
from risk.sizing import (
    min_stop_distance,
    position_size,
    stop_floored,
    stopout_loss,
    target_clears_costs,
)
from risk.types import Check, Decision, Exposure, Intent

_ZERO = Decimal("0")

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
    "GROSS_EXPOSURE_EXCEEDS_MAX",
    "DUPLICATE_EXPOSURE",
    "TARGET_BELOW_COSTS",
    "MIN_STOP_DISTANCE",
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

    money, sizing = _money_checks(intent, exposure, config, params, symbol)
    checks += money
    approved = all(c.passed for c in checks)
    return Decision(
        approved=approved,
        qty=max(sizing.qty, 0),
        checks=tuple(checks),
        notional=sizing.notional,
        stop_price=sizing.stop,
        expected_fill=sizing.fill,
        risk_at_stop=sizing.risk_at_stop,
    )


@dataclass(frozen=True)
class _Sized:
    qty: int
    notional: Decimal
    stop: Decimal | None
    fill: Decimal
    risk_at_stop: Decimal


def _min_positive(*values: Decimal | None) -> Decimal | None:
    found = [v for v in values if v is not None and v > 0]
    return min(found) if found else None


def _caps(exposure: Exposure, config: RiskConfig, params: SymbolParams):
    """(order cap, symbol cap, gross cap, unknown-equity message): USD caps and fractions of
    equity, the tighter of each pair; None = no cap."""
    equity = exposure.equity_estimate
    wants_equity = any(
        p > 0
        for p in (
            config.max_order_notional_pct,
            config.max_symbol_exposure_pct,
            config.max_gross_exposure_pct,
        )
    )
    if equity is None:
        unknown = "equity unknown (no cash balance): fractions of equity cannot be applied"
        return (
            _min_positive(config.max_order_notional_usd),
            _min_positive(params.max_notional_usd),
            None,
            unknown if wants_equity else "",
        )
    equity = max(equity, _ZERO)
    return (
        _min_positive(config.max_order_notional_usd, config.max_order_notional_pct * equity),
        _min_positive(params.max_notional_usd, config.max_symbol_exposure_pct * equity),
        config.max_gross_exposure_pct * equity if config.max_gross_exposure_pct > 0 else None,
        "",
    )


def _money_checks(intent, exposure, config, params, symbol) -> tuple[list[Check], _Sized]:
    """Stop floor, size, notional/exposure caps, cash, daily loss, duplicate ideas, T1 vs
    costs. Caps count positions plus entries in flight (pending_* of the exposure)."""
    costs = params.costs
    checks: list[Check] = []
    entry = Decimal(intent.entry_price)
    stop = None if intent.stop_price is None else Decimal(intent.stop_price)
    if stop is not None:
        valid = stop < entry if intent.side == "buy" else stop > entry
        checks.append(Check("STOP_INVALID", valid, f"stop {stop} vs entry {entry}"))
        if valid and intent.side == "buy":
            floor = min_stop_distance(
                atr=intent.atr,
                costs=costs,
                k_atr=params.min_stop_atr,
                n_ticks=params.min_stop_ticks,
                m_spreads=params.min_stop_spreads,
            )
            floored = stop_floored(entry=entry, stop=stop, floor=floor, tick=costs.tick_usd)
            if floored != stop:
                checks.append(
                    Check(
                        "MIN_STOP_DISTANCE",
                        True,
                        f"stop widened {stop} -> {floored}: {entry - stop} below entry is "
                        f"inside the floor {floor}",
                    )
                )
                stop = floored
    order_cap, symbol_cap, gross_cap, unknown = _caps(exposure, config, params)
    held = exposure.symbol_notional(symbol)
    spendable = exposure.spendable
    room = [order_cap]
    if symbol_cap is not None:
        room.append(symbol_cap - held)
    if gross_cap is not None:
        room.append(gross_cap - exposure.gross_notional)
    bounded = [r for r in room if r is not None]
    max_notional = min(bounded) if bounded else None
    if intent.qty is not None:
        fill = costs.market_fill("buy", entry)
        qty, how = int(intent.qty), "requested"
        risk = _ZERO
        if stop is not None and stop < entry:
            risk = stopout_loss(qty=qty, fill=fill, stop=stop, costs=costs)
    else:
        sized = position_size(
            entry=entry,
            stop=stop,
            risk_usd=config.risk_per_trade_usd,
            fixed_qty=params.qty,
            max_notional=max_notional if max_notional is None else max(max_notional, _ZERO),
            buying_power=None if spendable is None else spendable - config.min_cash_usd,
            costs=costs,
        )
        qty, how, fill, risk = sized.qty, sized.reason, sized.fill, sized.risk_at_stop
    checks.append(Check("QTY_ZERO", qty >= 1, f"qty {qty}: {how}"))
    qty = max(qty, 0)
    notional = fill * qty
    checks.append(
        Check(
            "NOTIONAL_EXCEEDS_MAX",
            order_cap is None or notional <= order_cap,
            f"notional {notional:.2f} (cap {'none' if order_cap is None else f'{order_cap:.2f}'})",
        )
    )
    if symbol_cap is not None:
        checks.append(
            Check(
                "NOTIONAL_EXCEEDS_SYMBOL_MAX",
                held + notional <= symbol_cap,
                f"{symbol} held+pending+new {held + notional:.2f} (cap {symbol_cap:.2f})",
            )
        )
    if gross_cap is not None:
        gross = exposure.gross_notional + notional
        checks.append(
            Check(
                "GROSS_EXPOSURE_EXCEEDS_MAX",
                gross <= gross_cap,
                f"positions+pending+new {gross:.2f} (cap {gross_cap:.2f})",
            )
        )
    if unknown:
        checks.append(Check("GROSS_EXPOSURE_EXCEEDS_MAX", False, unknown))
    checks += _cash_checks(exposure, config, notional + costs.fees("buy", qty, fill), qty)
    checks += _daily_loss_checks(exposure, config, risk)
    if config.duplicate_exposure and intent.setup:
        same = [i for i in exposure.ideas if i[0] == intent.setup and i[1].upper() == symbol]
        checks.append(
            Check(
                "DUPLICATE_EXPOSURE",
                not same,
                f"{intent.setup} in {symbol} already decided at "
                f"{min(i[2] for i in same):%H:%M:%S} UTC (one idea per setup and execution "
                f"symbol within {config.idea_window_sec}s)"
                if same
                else f"no live or recent {intent.setup} idea in {symbol}",
            )
        )
    if config.min_t1_cost_multiple > 0 and intent.target_one is not None:
        ok, message = target_clears_costs(
            entry=entry,
            target=Decimal(intent.target_one),
            costs=costs,
            multiple=config.min_t1_cost_multiple,
        )
        checks.append(Check("TARGET_BELOW_COSTS", ok, message))
    return checks, _Sized(qty, notional, stop, fill, risk)


def _cash_checks(exposure: Exposure, config: RiskConfig, cost: Decimal, qty: int) -> list[Check]:
    """The order, fees included, must leave MIN_CASH_USD of what entries in flight have not
    reserved. A size of 0 (sizing found no cash: QTY_ZERO says so) fails here only when
    MIN_CASH_USD is set."""
    spendable = exposure.spendable
    if spendable is None:
        if config.min_cash_usd > 0:
            return [Check("INSUFFICIENT_CASH", False, "cash balance unknown")]
        return []
    left = spendable - cost
    return [
        Check(
            "INSUFFICIENT_CASH",
            left >= config.min_cash_usd if (qty >= 1 or config.min_cash_usd > 0) else True,
            f"cash {spendable + exposure.pending_cash:.2f} - pending {exposure.pending_cash:.2f}"
            f" - this order {cost:.2f} = {left:.2f} (MIN_CASH_USD {config.min_cash_usd})",
        )
    ]


def _daily_loss_checks(exposure: Exposure, config: RiskConfig, risk: Decimal) -> list[Check]:
    """Blocks when today's P&L is at the limit, and when stopping out every live trade plus
    this one could take the day past it."""
    limit = config.daily_loss_limit_usd
    if limit <= 0:
        return []
    worst = exposure.day_pnl - exposure.open_risk - risk
    return [
        Check(
            "DAILY_LOSS_LIMIT",
            exposure.day_pnl > -limit and worst >= -limit,
            f"day P&L {exposure.day_pnl:.2f}, live trades at their stops -{exposure.open_risk:.2f}"
            f", this trade -{risk:.2f}: worst {worst:.2f} (limit -{limit})",
        )
    ]
