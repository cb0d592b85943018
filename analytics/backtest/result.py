"""What a backtest produces: the trade list and its statistics, per setup and overall."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime

from analytics.statistics import trade_stats

MARKET_TZ = "America/New_York"


@dataclass
class ExitLeg:
    ts: datetime  # start of the bar the exit filled on
    qty: int
    price: float
    reason: str


@dataclass
class TradeRecord:
    """One round trip. Prices are on the execution symbol; P&L in dollars (long only)."""

    symbol: str
    execution_symbol: str
    setup: str
    signal_ts: datetime  # start of the bar whose close fired the setup
    entry_ts: datetime  # start of the bar the entry filled on (at its open)
    entry_price: float
    qty: int
    stop: float
    target_one: float | None
    target_two: float | None
    legs: list[ExitLeg] = field(default_factory=list)
    fees: float = 0.0  # commissions of every fill, entry and exits
    realized: float | None = None  # the ledger's P&L when it closed the trade
    closed_at: datetime | None = None  # when the ledger closed it (a partly filled entry too)

    @property
    def exit_ts(self) -> datetime | None:
        return self.legs[-1].ts if self.legs else None

    @property
    def exit_price(self) -> float | None:
        shares = sum(leg.qty for leg in self.legs)
        if not shares:
            return None
        return sum(leg.qty * leg.price for leg in self.legs) / shares

    @property
    def exit_reason(self) -> str:
        return self.legs[-1].reason if self.legs else "open"

    @property
    def pnl(self) -> float:
        if self.realized is not None:
            return self.realized
        return sum(leg.qty * (leg.price - self.entry_price) for leg in self.legs) - self.fees

    @property
    def closed(self) -> bool:
        if self.closed_at is not None:
            return True
        return sum(leg.qty for leg in self.legs) >= self.qty

    def session_date(self) -> date:
        import pandas as pd

        stamp = self.exit_ts or self.entry_ts
        return pd.Timestamp(stamp).tz_convert(MARKET_TZ).date()

    def key(self) -> tuple:
        """Identity for comparing two runs (fast vs event, backtest vs recorded)."""
        return (
            self.symbol,
            self.setup,
            self.signal_ts,
            self.entry_ts,
            round(self.entry_price, 4),
            self.qty,
            tuple((leg.ts, leg.qty, round(leg.price, 4), leg.reason) for leg in self.legs),
        )

    def as_dict(self) -> dict:
        return {
            "symbol": self.symbol,
            "execution_symbol": self.execution_symbol,
            "setup": self.setup,
            "signal_ts": self.signal_ts.isoformat(),
            "entry_ts": self.entry_ts.isoformat(),
            "entry_price": round(self.entry_price, 4),
            "qty": self.qty,
            "stop": round(self.stop, 4),
            "target_one": None if self.target_one is None else round(self.target_one, 4),
            "target_two": None if self.target_two is None else round(self.target_two, 4),
            "exit_ts": self.exit_ts.isoformat() if self.exit_ts else None,
            "exit_price": None if self.exit_price is None else round(self.exit_price, 4),
            "exit_reason": self.exit_reason,
            "pnl": round(self.pnl, 4),
            "fees": round(self.fees, 4),
            "legs": [
                {**asdict(leg), "ts": leg.ts.isoformat(), "price": round(leg.price, 4)}
                for leg in self.legs
            ],
        }


APPROVED_OUTCOMES = ("approved", "dry_run", "submitted")


@dataclass
class SignalRecord:
    """A setup that fired, with what risk made of it."""

    symbol: str
    setup: str
    bar_ts: datetime
    outcome: str  # dry_run (traded) / risk_blocked / policy_blocked / failed
    reasons: list[str] = field(default_factory=list)
    qty: int = 0

    def key(self) -> tuple:
        return (self.symbol, self.setup, self.bar_ts, self.outcome)

    def as_dict(self) -> dict:
        return {
            "symbol": self.symbol,
            "setup": self.setup,
            "bar_ts": self.bar_ts.isoformat(),
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "qty": self.qty,
        }


@dataclass(frozen=True)
class StateChange:
    """A change of the simulated account's trading state (the daily loss limit's halt, its
    lift at the next trading day's open)."""

    at: datetime
    from_state: str
    to_state: str
    reason: str

    def as_dict(self) -> dict:
        return {"at": self.at.isoformat(), "from": self.from_state, "to": self.to_state,
                "reason": self.reason}  # fmt: skip


@dataclass
class BacktestResult:
    mode: str
    symbols: list[str]
    sessions: list[date]
    bars: int
    trades: list[TradeRecord]
    signals: list[SignalRecord]
    params: dict = field(default_factory=dict)
    session_labels: dict[date, str] = field(default_factory=dict)
    elapsed_sec: float = 0.0
    state_changes: list[StateChange] = field(default_factory=list)

    def closed_trades(self) -> list[TradeRecord]:
        return sorted((t for t in self.trades if t.closed), key=lambda t: (t.exit_ts, t.entry_ts))

    def stats(self) -> dict:
        """Overall and per-setup statistics of the closed trades (chronological by exit)."""
        closed = self.closed_trades()
        out = {"ALL": self._stats_of(closed)}
        for setup in sorted({t.setup for t in closed}):
            out[setup] = self._stats_of([t for t in closed if t.setup == setup])
        return out

    def _stats_of(self, trades: list[TradeRecord]) -> dict:
        stats = trade_stats(
            [t.pnl for t in trades],
            days=[t.session_date() for t in trades],
            all_days=self.sessions,
        )
        return stats.as_dict()

    def signal_counts(self) -> dict:
        """fired = approved + blocked + failed; approved = the signals that became a trade
        (outcome dry_run / submitted, as live records them), blocked = refused by a rule
        (by_reason counts each code once per signal)."""
        approved = sum(s.outcome in APPROVED_OUTCOMES for s in self.signals)
        failed = sum(s.outcome == "failed" for s in self.signals)
        by_reason: dict[str, int] = {}
        for signal in self.signals:
            if signal.outcome in APPROVED_OUTCOMES:
                continue
            for code in dict.fromkeys(signal.reasons):
                by_reason[code] = by_reason.get(code, 0) + 1
        return {
            "fired": len(self.signals),
            "approved": approved,
            "blocked": len(self.signals) - approved - failed,
            "failed": failed,
            "by_reason": dict(sorted(by_reason.items())),
        }

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "symbols": self.symbols,
            "sessions": len(self.sessions),
            "bars": self.bars,
            "elapsed_sec": round(self.elapsed_sec, 4),
            "params": self.params,
            "stats": self.stats(),
            "signals": self.signal_counts(),
            "trades": [t.as_dict() for t in self.closed_trades()],
            "session_labels": {str(d): label for d, label in sorted(self.session_labels.items())},
            "state_changes": [c.as_dict() for c in self.state_changes],
        }
