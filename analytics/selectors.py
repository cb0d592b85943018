"""Reads for analytics: the signal journal summarised, stored backtests and sweeps."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime

from django.db.models import Count, QuerySet

from analytics.models import BacktestRun, SweepRun
from marketdata.models import SessionLabel
from strategies.models import Signal

BLOCKED_OUTCOMES = ("options_blocked", "policy_blocked", "risk_blocked", "failed")


def _signals_in_range(start: datetime | None, end: datetime | None) -> QuerySet:
    qs = Signal.objects.all()
    if start is not None:
        qs = qs.filter(bar_ts__gte=start)
    if end is not None:
        qs = qs.filter(bar_ts__lt=end)
    return qs


def signals_summarize(*, start: datetime | None = None, end: datetime | None = None) -> dict:
    """Counts of journaled signals by setup × outcome and of the reasons that blocked them,
    for signals whose bar started in [start, end)."""
    qs = _signals_in_range(start, end)
    by_setup: dict[str, dict] = {}
    by_outcome: Counter = Counter()
    total = 0
    rows = qs.order_by().values("setup", "outcome").annotate(n=Count("id"))
    for row in rows:
        entry = by_setup.setdefault(row["setup"], {"total": 0, "outcomes": {}})
        entry["total"] += row["n"]
        entry["outcomes"][row["outcome"]] = row["n"]
        by_outcome[row["outcome"]] += row["n"]
        total += row["n"]
    reasons: Counter = Counter()
    reasons_by_setup: dict[str, Counter] = defaultdict(Counter)
    blocked = qs.exclude(reasons=[]).order_by().values_list("setup", "reasons")
    for setup, codes in blocked.iterator(chunk_size=2000):
        for code in codes or ():
            reasons[str(code)] += 1
            reasons_by_setup[setup][str(code)] += 1
    return {
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "total": total,
        "by_outcome": dict(sorted(by_outcome.items())),
        "by_setup": dict(sorted(by_setup.items())),
        "block_reasons": dict(reasons.most_common()),
        "block_reasons_by_setup": {
            setup: dict(counter.most_common())
            for setup, counter in sorted(reasons_by_setup.items())
        },
    }


def signals_for_replay(*, limit: int, setups: list[str] | None = None) -> list[Signal]:
    """The most recent `limit` journaled signals, oldest first (for forward-return replay)."""
    qs = Signal.objects.all()
    if setups:
        qs = qs.filter(setup__in=setups)
    latest = list(qs.order_by("-bar_ts", "-id")[:limit])
    latest.reverse()
    return latest


def backtest_run_list() -> QuerySet:
    return BacktestRun.objects.select_related("sweep").order_by("-created_at", "-id")


def sweep_run_list() -> QuerySet:
    return SweepRun.objects.order_by("-created_at", "-id")


def session_labels_map(*, symbol: str, days: list[date] | None = None) -> dict[date, str]:
    """Session date → label (trend/balance) for a symbol, for reports and session policies."""
    qs = SessionLabel.objects.filter(symbol=symbol)
    if days is not None:
        qs = qs.filter(session_date__in=days)
    return dict(qs.values_list("session_date", "label"))


def walkforward_run_list() -> QuerySet:
    from analytics.models import WalkForwardRun

    return WalkForwardRun.objects.all()


def drift_entry_list(*, setup: str | None = None, status: str | None = None) -> QuerySet:
    from analytics.models import DriftEntry

    qs = DriftEntry.objects.all()
    if setup:
        qs = qs.filter(setup=setup)
    if status:
        qs = qs.filter(status=status)
    return qs


def _mean(values: list) -> float | None:
    values = [float(v) for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def drift_summary(*, start: datetime | None = None, end: datetime | None = None) -> dict:
    """Drift per setup and overall over signals on bars in [start, end): pairs, missed fills,
    live-only trades, mean entry/exit slippage (bps), mean entry/exit delay (s), P&L of both."""
    from analytics.models import DriftEntry, DriftStatus

    qs = DriftEntry.objects.all()
    if start:
        qs = qs.filter(signal_ts__gte=start)
    if end:
        qs = qs.filter(signal_ts__lt=end)
    rows = list(qs.values())
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["setup"], []).append(row)

    def summarise(items: list[dict]) -> dict:
        matched = [r for r in items if r["status"] == DriftStatus.MATCHED]
        return {
            "pairs": sum(1 for r in items if r["status"] != DriftStatus.LIVE_ONLY),
            "matched": len(matched),
            "missed": sum(1 for r in items if r["status"] == DriftStatus.MISSED),
            "live_only": sum(1 for r in items if r["status"] == DriftStatus.LIVE_ONLY),
            "entry_slippage_bps": _mean([r["entry_slippage_bps"] for r in matched]),
            "exit_slippage_bps": _mean([r["exit_slippage_bps"] for r in matched]),
            "entry_delay_sec": _mean([r["entry_delay_sec"] for r in matched]),
            "exit_delay_sec": _mean([r["exit_delay_sec"] for r in matched]),
            "live_pnl": round(sum(float(r["live_pnl"] or 0) for r in matched), 4),
            "sim_pnl": round(sum(float(r["sim_pnl"] or 0) for r in matched), 4),
        }

    return {
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "all": summarise(rows),
        "by_setup": {setup: summarise(items) for setup, items in sorted(groups.items())},
    }
