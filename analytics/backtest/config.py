"""Everything a backtest reads, captured once from the settings into typed objects (the same
`StrategyConfig` and `RiskConfig` the live path builds), so a run is reproducible and a sweep
can vary any setting without touching the process environment."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import time
from decimal import Decimal

from django.conf import settings
from django.test.utils import override_settings

from risk.config import RiskConfig
from strategies.config import StrategyConfig
from trading.brokers.paper import fill_costs_from_settings
from trading.core.fills import FillCosts


def settings_values(overrides: dict) -> dict:
    """Overrides as values of the settings' own types (for override_settings)."""
    out = {}
    for name, value in overrides.items():
        current = getattr(settings, name)
        if isinstance(current, Decimal):
            out[name] = Decimal(str(value))
        elif isinstance(current, time) and isinstance(value, str):
            hours, minutes = value.split(":")
            out[name] = time(int(hours), int(minutes))
        else:
            out[name] = value
    return out


@dataclass(frozen=True)
class BacktestConfig:
    strategy: StrategyConfig
    risk: RiskConfig
    costs: FillCosts
    starting_cash: Decimal = Decimal("100000")
    flatten_before_close_min: int = 5
    worst_case: bool = False
    policy_book: object = None  # strategies.policies.PolicyBook when SESSION_POLICY_FILE is set

    @classmethod
    def from_settings(
        cls,
        *,
        overrides: dict | None = None,
        setups: list[str] | None = None,
        worst_case: bool = False,
    ) -> BacktestConfig:
        """Read the configs; `overrides` (setting name → value of the setting's type) apply
        only while the configs are read."""
        with override_settings(**settings_values(overrides or {})):
            strategy = StrategyConfig.from_settings()
            risk = RiskConfig.from_settings()
            costs = fill_costs_from_settings()
            cash = Decimal(settings.PAPER_STARTING_CASH_USD)
            flatten = int(settings.FLATTEN_BEFORE_CLOSE_MIN)
            from strategies.policies import policy_book

            book = policy_book()
        if setups:
            unknown = sorted(set(setups) - set(settings.ALL_SETUPS))
            if unknown:
                raise ValueError(f"unknown setups: {', '.join(unknown)}")
            strategy = replace(
                strategy, enabled_setups=tuple(s for s in settings.ALL_SETUPS if s in setups)
            )
        return cls(
            strategy=strategy,
            risk=risk,
            costs=costs,
            starting_cash=cash,
            flatten_before_close_min=flatten,
            worst_case=worst_case,
            policy_book=book,
        )

    def fill_costs(self) -> FillCosts:
        """The fill model of this run (the worst-case option folded in)."""
        return replace(self.costs, worst_case=self.worst_case)

    def describe(self) -> dict:
        """The parameters that shape results, JSON-safe, for stored runs and reports."""
        s, r = self.strategy, self.risk
        return {
            "setups": list(s.enabled_setups),
            "cooldown_sec": s.cooldown_sec,
            "stop_atr": s.stop_atr,
            "target_one_atr": s.target_one_atr,
            "target_two_atr": s.target_two_atr,
            "risk_per_trade_usd": str(r.risk_per_trade_usd),
            "max_concurrent": r.max_concurrent,
            "partial_exit_pct": str(r.partial_exit_pct),
            "trade_timeout_min": r.trade_timeout_min,
            "window": f"{r.window_start:%H:%M}-{r.window_end:%H:%M}",
            "costs": {k: str(v) for k, v in asdict(self.costs.model).items()},
            "volume_cap_pct": str(self.costs.volume_cap_pct),
            "entry_limit_timeout_sec": r.entry_limit_timeout_sec,
            "flatten_before_close_min": self.flatten_before_close_min,
            "worst_case": self.worst_case,
            "session_policies": getattr(self.policy_book, "path", None),
            "not_simulated": self.not_simulated(),
        }

    def not_simulated(self) -> list[str]:
        """Live rules a backtest leaves out, named so a result is never mistaken for them."""
        return ["options gate (no historical options snapshots)"]
