"""Reads of risk state: the trading state, per-symbol overrides, the effective configuration."""

from __future__ import annotations

from decimal import Decimal

from risk.config import RiskConfig, SymbolParams, symbol_params
from risk.costs import COST_FIELDS
from risk.models import SymbolOverride, TradingMode, TradingState, TradingStateChange

DEFAULT_ACCOUNT = "default"


def trading_state_get(*, account: str = DEFAULT_ACCOUNT) -> TradingState:
    """The account's trading state; ACTIVE when never set."""
    state = TradingState.objects.filter(account=account).first()
    return state or TradingState(account=account, state=TradingMode.ACTIVE)


def trading_state_history(*, account: str = DEFAULT_ACCOUNT, limit: int = 50):
    return TradingStateChange.objects.filter(account=account)[:limit]


def symbol_params_get(*, symbol: str, config: RiskConfig | None = None) -> SymbolParams:
    """Merged per-symbol values: SymbolOverride row > QTY_<SYM>-style env > defaults."""
    config = config or RiskConfig.from_settings()
    override = SymbolOverride.objects.filter(symbol=symbol.upper()).first()
    return symbol_params(symbol, config, override)


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, frozenset):
        return sorted(value)
    return value


def effective_config(*, symbol: str | None = None, config: RiskConfig | None = None) -> dict:
    """Every risk value that applies (to `symbol` when given) with where it came from
    ("override", "env", "default" or "settings"), for GET /api/v1/config/effective."""
    config = config or RiskConfig.from_settings()
    out: dict = {"symbol": symbol.upper() if symbol else None, "values": {}}
    values = out["values"]
    for name in (
        "risk_per_trade_usd",
        "default_qty",
        "max_concurrent",
        "max_open_orders",
        "max_positions_per_symbol",
        "max_order_notional_usd",
        "max_daily_loss_usd",
        "min_cash_usd",
        "window_start",
        "window_end",
        "whitelist",
        "blacklist",
        "partial_exit_pct",
        "trade_timeout_min",
        "entry_spread_bps",
        "entry_limit_offset_bps",
        "entry_limit_timeout_sec",
        "stale_order_minutes",
        "max_order_notional_pct",
        "max_symbol_exposure_pct",
        "max_gross_exposure_pct",
        "max_daily_loss_r",
        "duplicate_exposure",
        "idea_window_sec",
        "min_t1_cost_multiple",
        "slippage_allowance",
    ):
        values[name] = {"value": _plain(getattr(config, name)), "source": "settings"}
    if symbol:
        params = symbol_params_get(symbol=symbol, config=config)
        for name in (
            "enabled",
            "qty",
            "stop_pct",
            "tp_pct",
            "trail_pct",
            "trail_act_pct",
            "max_notional_usd",
            "min_stop_atr",
            "min_stop_ticks",
            "min_stop_spreads",
        ):
            values[name] = {
                "value": _plain(getattr(params, name)),
                "source": params.sources.get(name, "default"),
            }
        for name in COST_FIELDS:
            values[f"cost_{name}"] = {
                "value": _plain(getattr(params.costs, name)),
                "source": params.sources.get(name, "settings"),
            }
        values["symbol_window"] = {
            "value": (
                [_plain(params.window_start), _plain(params.window_end)]
                if params.window_start
                else None
            ),
            "source": params.sources.get("window", "default"),
        }
    else:
        for name in ("stop_pct", "tp_pct", "trail_pct", "trail_act_pct"):
            values[name] = {"value": _plain(getattr(config, name)), "source": "settings"}
    state = trading_state_get()
    values["trading_state"] = {"value": state.state, "source": "database"}
    return out
