"""Prometheus gauges of the drift ledger, set whenever the ledger is updated (the most recent
summary wins in multiprocess mode)."""

from __future__ import annotations

from prometheus_client import Gauge

DRIFT_SLIPPAGE_BPS = Gauge(
    "autotrader_drift_slippage_bps",
    "Mean slippage of live/paper fills against the simulated fill of the same signal, in bps "
    "(positive: live did worse), by setup and leg (entry, exit)",
    ["setup", "leg"],
    multiprocess_mode="mostrecent",
)
DRIFT_TRADES = Gauge(
    "autotrader_drift_trades",
    "Trades of the last drift ledger update by setup and status (matched, missed, live_only)",
    ["setup", "status"],
    multiprocess_mode="mostrecent",
)


def drift_gauges_set(summary: dict) -> None:
    groups = {"ALL": summary["all"], **summary["by_setup"]}
    for setup, s in groups.items():
        for leg in ("entry", "exit"):
            value = s[f"{leg}_slippage_bps"]
            DRIFT_SLIPPAGE_BPS.labels(setup=setup, leg=leg).set(0.0 if value is None else value)
        for status in ("matched", "missed", "live_only"):
            DRIFT_TRADES.labels(setup=setup, status=status).set(s[status])
