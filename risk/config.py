"""Risk settings read once into typed objects.

Business code takes a `RiskConfig` as an argument, so tests build one directly instead of
patching the environment. Per-symbol environment overrides (`QTY_<SYM>`, `STOP_<SYM>`,
`TP_<SYM>`, `TRAIL_<SYM>`, `TRAIL_ACT_<SYM>`) are parsed and validated here at start-up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import time
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ImproperlyConfigured

from risk.costs import CostModel, cost_model_for, cost_model_from_settings

# Global settings whose names look like per-symbol overrides (STOP_PCT is not symbol "PCT").
_RESERVED = {"STOP_PCT", "TP_PCT", "TRAIL_PCT", "TRAIL_ACT_PCT"}
_OVERRIDE_RE = re.compile(r"^(QTY|STOP|TP|TRAIL_ACT|TRAIL)_([A-Z][A-Z0-9.]{0,9})$")
_FIELD_BY_PREFIX = {
    "QTY": "qty",
    "STOP": "stop_pct",
    "TP": "tp_pct",
    "TRAIL": "trail_pct",
    "TRAIL_ACT": "trail_act_pct",
}


@dataclass(frozen=True)
class SymbolEnvOverride:
    """Values set for one symbol by environment variables; None = not set."""

    qty: int | None = None
    stop_pct: Decimal | None = None
    tp_pct: Decimal | None = None
    trail_pct: Decimal | None = None
    trail_act_pct: Decimal | None = None


def _to_decimal(name: str, value: str) -> Decimal:
    try:
        parsed = Decimal(value.strip())
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={value!r} is not a decimal number") from None
    if not parsed.is_finite():
        raise ImproperlyConfigured(f"{name} must be a finite number")
    return parsed


def parse_symbol_env_overrides(environ: Mapping[str, str]) -> dict[str, SymbolEnvOverride]:
    """Collect `QTY_<SYM>`-style variables; an invalid value raises ImproperlyConfigured naming
    the variable, so a typo never trades with a default."""
    found: dict[str, dict] = {}
    for name, raw in environ.items():
        if name in _RESERVED:
            continue
        match = _OVERRIDE_RE.match(name)
        if not match or raw is None or not raw.strip():
            continue
        prefix, symbol = match.group(1), match.group(2)
        attr = _FIELD_BY_PREFIX[prefix]
        if attr == "qty":
            try:
                value = int(raw.strip())
            except ValueError:
                raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
            if value < 1:
                raise ImproperlyConfigured(f"{name}={value} must be >= 1")
        else:
            value = _to_decimal(name, raw)
            if attr in ("stop_pct", "trail_pct") and not (0 < value < 1):
                raise ImproperlyConfigured(f"{name}={value} must be a fraction in (0, 1)")
            if attr in ("tp_pct", "trail_act_pct") and value <= 0:
                raise ImproperlyConfigured(f"{name}={value} must be positive")
        found.setdefault(symbol, {})[attr] = value
    return {symbol: SymbolEnvOverride(**values) for symbol, values in found.items()}


def _dec(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _daily_limit(usd, r_multiple, risk_per_trade) -> Decimal:
    """The tighter of a USD limit and R x the risk per trade, 0 = none. `from_settings` folds
    RISK_MAX_DAILY_LOSS_R into max_daily_loss_usd so every reader (rules, kill switch,
    backtests) applies one number."""
    limits = [Decimal(str(usd)), Decimal(str(r_multiple)) * Decimal(str(risk_per_trade))]
    limits = [v for v in limits if v > 0]
    return min(limits) if limits else Decimal("0")


@dataclass(frozen=True)
class RiskConfig:
    risk_per_trade_usd: Decimal = Decimal("100")
    default_qty: int = 1
    max_concurrent: int = 3
    max_open_orders: int = 5
    max_positions_per_symbol: int = 0  # 0 = no per-symbol limit
    max_order_notional_usd: Decimal = Decimal("0")  # 0 = no cap
    max_daily_loss_usd: Decimal = Decimal("0")  # 0 = no kill switch
    min_cash_usd: Decimal = Decimal("0")
    # Fractions of equity (0 = no cap). The dataclass defaults are the bare rules tests build;
    # the service reads the sane defaults of settings (see README "Money safety").
    max_order_notional_pct: Decimal = Decimal("0")
    max_symbol_exposure_pct: Decimal = Decimal("0")
    max_gross_exposure_pct: Decimal = Decimal("0")
    max_daily_loss_r: Decimal = Decimal("0")  # in multiples of risk_per_trade_usd
    duplicate_exposure: bool = False
    idea_window_sec: int = 300
    min_stop_atr: Decimal = Decimal("0")
    min_stop_ticks: int = 0
    min_stop_spreads: Decimal = Decimal("0")
    min_t1_cost_multiple: Decimal = Decimal("0")
    slippage_allowance: Decimal = Decimal("0.05")
    costs: CostModel = field(default_factory=CostModel)
    window_start: time = time(9, 31)
    window_end: time = time(15, 55)
    whitelist: frozenset[str] = frozenset()
    blacklist: frozenset[str] = frozenset()
    stop_pct: Decimal | None = None
    tp_pct: Decimal | None = None
    trail_pct: Decimal | None = None
    trail_act_pct: Decimal | None = None
    partial_exit_pct: Decimal = Decimal("0.5")
    resting_targets: bool = False  # RESTING_TARGETS: T1/T2 rest at the broker (OCO pairs)
    trade_timeout_min: int = 45
    entry_spread_bps: Decimal = Decimal("10")
    entry_limit_offset_bps: Decimal = Decimal("2")
    entry_limit_timeout_sec: float = 2.0
    stale_order_minutes: int = 60
    symbol_env: Mapping[str, SymbolEnvOverride] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, environ: Mapping[str, str] | None = None) -> RiskConfig:
        from django.conf import settings as s

        return cls(
            risk_per_trade_usd=s.RISK_PER_TRADE_USD,
            default_qty=s.ORDER_QTY,
            max_concurrent=s.RISK_MAX_CONCURRENT,
            max_open_orders=s.RISK_MAX_OPEN_ORDERS,
            max_positions_per_symbol=s.RISK_MAX_POSITIONS_PER_SYMBOL,
            max_order_notional_usd=s.RISK_MAX_ORDER_NOTIONAL_USD,
            max_daily_loss_usd=_daily_limit(
                s.RISK_MAX_DAILY_LOSS_USD, s.RISK_MAX_DAILY_LOSS_R, s.RISK_PER_TRADE_USD
            ),
            min_cash_usd=s.MIN_CASH_USD,
            max_order_notional_pct=_dec(s.RISK_MAX_ORDER_NOTIONAL_PCT),
            max_symbol_exposure_pct=_dec(s.RISK_MAX_SYMBOL_EXPOSURE_PCT),
            max_gross_exposure_pct=_dec(s.RISK_MAX_GROSS_EXPOSURE_PCT),
            max_daily_loss_r=_dec(s.RISK_MAX_DAILY_LOSS_R),
            duplicate_exposure=s.RISK_DUPLICATE_EXPOSURE,
            idea_window_sec=s.RISK_IDEA_WINDOW_SEC,
            min_stop_atr=_dec(s.RISK_MIN_STOP_ATR),
            min_stop_ticks=s.RISK_MIN_STOP_TICKS,
            min_stop_spreads=_dec(s.RISK_MIN_STOP_SPREADS),
            min_t1_cost_multiple=_dec(s.RISK_MIN_T1_COST_MULTIPLE),
            slippage_allowance=_dec(s.RISK_SLIPPAGE_ALLOWANCE),
            costs=cost_model_from_settings(),
            window_start=s.TRADING_WINDOW_START,
            window_end=s.TRADING_WINDOW_END,
            whitelist=frozenset(s.SYMBOL_WHITELIST),
            blacklist=frozenset(s.SYMBOL_BLACKLIST),
            stop_pct=_dec(s.STOP_PCT),
            tp_pct=_dec(s.TP_PCT),
            trail_pct=_dec(s.TRAIL_PCT),
            trail_act_pct=_dec(s.TRAIL_ACT_PCT),
            partial_exit_pct=_dec(s.PARTIAL_EXIT_PCT),
            resting_targets=bool(s.RESTING_TARGETS),
            trade_timeout_min=s.TRADE_TIMEOUT_MIN,
            entry_spread_bps=_dec(s.ENTRY_SPREAD_BPS),
            entry_limit_offset_bps=_dec(s.ENTRY_LIMIT_OFFSET_BPS),
            entry_limit_timeout_sec=float(s.ENTRY_LIMIT_TIMEOUT_SEC),
            stale_order_minutes=s.STALE_ORDER_MINUTES,
            symbol_env=parse_symbol_env_overrides(os.environ if environ is None else environ),
        )

    def with_(self, **changes) -> RiskConfig:
        return replace(self, **changes)

    def money_rules_active(self) -> list[str]:
        """The money-safety rules (issue 13) this configuration switches on, by setting name:
        an engine that does not implement one must not run the configuration."""
        active = {
            "RISK_MAX_ORDER_NOTIONAL_PCT": self.max_order_notional_pct > 0,
            "RISK_MAX_SYMBOL_EXPOSURE_PCT": self.max_symbol_exposure_pct > 0,
            "RISK_MAX_GROSS_EXPOSURE_PCT": self.max_gross_exposure_pct > 0,
            "RISK_MAX_DAILY_LOSS_R": self.max_daily_loss_r > 0,
            "RISK_DUPLICATE_EXPOSURE": self.duplicate_exposure,
            "RISK_MIN_STOP_*": bool(
                self.min_stop_atr > 0 or self.min_stop_ticks > 0 or self.min_stop_spreads > 0
            ),
            "RISK_MIN_T1_COST_MULTIPLE": self.min_t1_cost_multiple > 0,
            "COST_*": self.costs != CostModel(tick_usd=self.costs.tick_usd),
        }
        return [name for name, on in active.items() if on]

    @property
    def daily_loss_limit_usd(self) -> Decimal:
        """The daily loss limit in USD (0 = none): the tighter of max_daily_loss_usd and
        max_daily_loss_r x risk per trade."""
        return _daily_limit(self.max_daily_loss_usd, self.max_daily_loss_r, self.risk_per_trade_usd)


@dataclass(frozen=True)
class SymbolParams:
    """The merged per-symbol values the rules and the exit plan use, each with its source
    ("override" = risk.SymbolOverride row, "env" = QTY_<SYM>-style variable, "default")."""

    symbol: str
    enabled: bool = True
    qty: int | None = None
    stop_pct: Decimal | None = None
    tp_pct: Decimal | None = None
    trail_pct: Decimal | None = None
    trail_act_pct: Decimal | None = None
    window_start: time | None = None
    window_end: time | None = None
    max_notional_usd: Decimal | None = None
    costs: CostModel = field(default_factory=CostModel)
    min_stop_atr: Decimal = Decimal("0")
    min_stop_ticks: int = 0
    min_stop_spreads: Decimal = Decimal("0")
    sources: Mapping[str, str] = field(default_factory=dict)


_MERGED = ("qty", "stop_pct", "tp_pct", "trail_pct", "trail_act_pct")


def symbol_params(symbol: str, config: RiskConfig, override=None) -> SymbolParams:
    """Merge, in order of precedence: the `SymbolOverride` row (any object with the same
    attributes, or None), the `<PREFIX>_<SYM>` environment values, the global defaults."""
    symbol = symbol.upper()
    env = config.symbol_env.get(symbol, SymbolEnvOverride())
    defaults = {
        "qty": None,
        "stop_pct": config.stop_pct,
        "tp_pct": config.tp_pct,
        "trail_pct": config.trail_pct,
        "trail_act_pct": config.trail_act_pct,
    }
    values: dict = {}
    sources: dict[str, str] = {}
    for name in _MERGED:
        row_value = getattr(override, name, None) if override is not None else None
        if row_value is not None:
            values[name], sources[name] = row_value, "override"
        elif getattr(env, name) is not None:
            values[name], sources[name] = getattr(env, name), "env"
        else:
            values[name], sources[name] = defaults[name], "default"
    for name in ("qty",):
        if values[name] is not None:
            values[name] = int(values[name])
    for name in ("stop_pct", "tp_pct", "trail_pct", "trail_act_pct"):
        values[name] = _dec(values[name])
    enabled = True if override is None else bool(override.enabled)
    sources["enabled"] = "override" if override is not None else "default"
    window_start = getattr(override, "window_start", None) if override is not None else None
    window_end = getattr(override, "window_end", None) if override is not None else None
    sources["window"] = "override" if window_start and window_end else "default"
    max_notional = getattr(override, "max_notional_usd", None) if override is not None else None
    sources["max_notional_usd"] = "override" if max_notional is not None else "default"
    floors = {}
    for name in ("min_stop_atr", "min_stop_ticks", "min_stop_spreads"):
        row_value = getattr(override, name, None) if override is not None else None
        floors[name] = row_value if row_value is not None else getattr(config, name)
        sources[name] = "override" if row_value is not None else "default"
    for name in ("spread_usd", "slippage_usd", "commission_per_share_usd"):
        row_value = getattr(override, name, None) if override is not None else None
        sources[name] = "override" if row_value is not None else "default"
    return SymbolParams(
        symbol=symbol,
        enabled=enabled,
        window_start=window_start if window_end else None,
        window_end=window_end if window_start else None,
        max_notional_usd=_dec(max_notional),
        costs=cost_model_for(config.costs, override),
        min_stop_atr=_dec(floors["min_stop_atr"]),
        min_stop_ticks=int(floors["min_stop_ticks"]),
        min_stop_spreads=_dec(floors["min_stop_spreads"]),
        sources=sources,
        **values,
    )
