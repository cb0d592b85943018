"""A backtest's signal counts name what became a trade: `dry_run` is how a traded signal is
recorded (as on paper), so counting only `approved` always said 0."""

from __future__ import annotations

from datetime import UTC, date, datetime

from analytics.backtest.result import BacktestResult, SignalRecord

T = datetime(2025, 9, 17, 15, 0, tzinfo=UTC)


def test_traded_blocked_and_failed_signals_are_counted_apart():
    signals = [
        SignalRecord("SPY", "ORB", T, "dry_run", [], 10),
        SignalRecord("SPX", "ORB", T, "risk_blocked", ["DUPLICATE_EXPOSURE"], 10),
        SignalRecord("SPY", "EMA_CROSS", T, "risk_blocked", ["MAX_CONCURRENT", "QTY_ZERO"], 0),
        SignalRecord("SPY", "HOD_FAIL", T, "policy_blocked", ["POLICY_NO_SESSION"], 0),
        SignalRecord("SPY", "VWAP_MEAN", T, "failed", ["EXECUTION_PRICE_MISSING"], 0),
        SignalRecord("QQQ", "ORB", T, "dry_run", [], 3),
    ]
    result = BacktestResult("event", ["SPY"], [date(2025, 9, 17)], 390, [], signals)
    counts = result.as_dict()["signals"]
    assert counts["fired"] == 6
    assert counts["approved"] == 2
    assert counts["blocked"] == 3
    assert counts["failed"] == 1
    assert counts["by_reason"] == {
        "DUPLICATE_EXPOSURE": 1,
        "EXECUTION_PRICE_MISSING": 1,
        "MAX_CONCURRENT": 1,
        "POLICY_NO_SESSION": 1,
        "QTY_ZERO": 1,
    }
