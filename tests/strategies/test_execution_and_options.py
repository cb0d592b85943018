"""Execution map (SPX signals -> SPY orders) and options gating from snapshot payloads."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from marketdata.services import bars_upsert
from marketdata.types import BarData
from strategies.config import StrategyConfig
from strategies.execution_map import levels_translate
from strategies.models import FeatureSnapshot
from strategies.options_gate import options_checks, options_fetcher_set, options_summary
from strategies.services import evaluate_bar
from tests.strategies import sequences

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "polygon"
CHAIN = json.loads((FIXTURE / "v3_snapshot_options_AAPL_chain.json").read_text())


def scaled(bars, symbol, factor, volume=None):
    return [
        BarData(
            symbol=symbol,
            ts=b.ts,
            open=b.open * factor,
            high=b.high * factor,
            low=b.low * factor,
            close=b.close * factor,
            volume=b.volume if volume is None else volume,
            source=b.source,
        )
        for b in bars
    ]


def test_levels_translate_by_price_ratio():
    e, s, t1, t2, atr = levels_translate(
        ratio=0.1, entry=5000.0, stop=4990.0, target_one=5010.0, target_two=5020.0, atr=8.0
    )
    assert (e, s, t1, t2) == (
        Decimal("500.00"),
        Decimal("499.00"),
        Decimal("501.00"),
        Decimal("502.00"),
    )
    assert atr == pytest.approx(0.8)


@pytest.mark.django_db
def test_index_signal_trades_the_proxy_at_proxy_prices(settings):
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    settings.SYMBOL_EXECUTION_MAP = {"SPX": "SPY"}
    spy = sequences.ema_cross("SPY")
    spx = scaled(spy.bars, "SPX", 10.0, volume=0.0)  # the index has no volume
    bars_upsert(bars=spy.bars + spx)
    fired = [s for b in spx for s in evaluate_bar(symbol="SPX", bar_ts=b.ts)]
    assert len(fired) == 1
    s = fired[0]
    assert (s.symbol, s.execution_symbol, s.bar_ts) == ("SPX", "SPY", spy.expected)
    # the same setup evaluated on SPY itself gives the same levels: ratio translation
    own = [x for b in spy.bars for x in evaluate_bar(symbol="SPY", bar_ts=b.ts)][0]
    assert s.entry_price == own.entry_price == Decimal("101.00")
    assert (s.stop_price, s.target_one, s.target_two) == (
        own.stop_price,
        own.target_one,
        own.target_two,
    )
    assert s.features["exec_atr"] == pytest.approx(own.features["exec_atr"])
    assert s.features["atr_14"] == pytest.approx(10 * own.features["atr_14"])
    # volume features of the index come from the proxy: vwap/rvol exist despite zero volume
    snap = FeatureSnapshot.objects.get(symbol="SPX", bar_ts=spy.expected).features
    assert snap["vwap"] is not None and snap["rvol"] == pytest.approx(1.0)


@pytest.mark.django_db
def test_missing_execution_price_fails_the_signal_visibly(settings):
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    spx = scaled(sequences.ema_cross("SPY").bars, "SPX", 10.0, volume=0.0)
    bars_upsert(bars=spx)
    (s,) = [x for b in spx for x in evaluate_bar(symbol="SPX", bar_ts=b.ts)]
    assert s.outcome == "failed" and s.reasons == ["EXECUTION_PRICE_MISSING"]


def test_summary_of_the_polygon_chain_fixture():
    summary = options_summary(CHAIN["results"])
    assert summary == {
        "contracts": 1,
        "volume": 8.0,
        "open_interest": 8133.0,
        "median_iv": pytest.approx(0.3570277203465058),
    }


def cfg(**kw):
    from dataclasses import replace

    return replace(StrategyConfig(), **kw)


def test_gate_blocks_a_thin_chain_and_caches_the_snapshot():
    calls = []

    def fetch(underlying):
        calls.append(underlying)
        return CHAIN["results"]

    options_fetcher_set(fetch)
    checks = options_checks("AAPL", cfg(options_min_volume=500))
    assert [(c["code"], c["passed"]) for c in checks] == [
        ("OPTIONS_VOLUME", False),
        ("OPTIONS_IV", True),
    ]
    options_checks("AAPL", cfg(options_min_volume=500))
    assert calls == ["AAPL"]  # second call served from the cache


def test_gate_blocks_high_iv_and_passes_a_liquid_calm_chain():
    options_fetcher_set(lambda u: CHAIN["results"])
    high_iv = options_checks("AAPL", cfg(options_min_volume=5, options_max_iv=0.3))
    assert [c["code"] for c in high_iv if not c["passed"]] == ["OPTIONS_IV"]
    ok = options_checks("AAPL", cfg(options_min_volume=5, options_max_iv=0.5))
    assert all(c["passed"] for c in ok)


def test_gate_without_api_key_passes_and_says_so(settings):
    settings.POLYGON_API_KEY = ""
    (check,) = options_checks("SPY", cfg())
    assert check["passed"] and "options feedback unavailable" in check["message"]


def test_gate_on_provider_failure_passes_and_says_so():
    def fetch(underlying):
        raise TimeoutError("slow")

    options_fetcher_set(fetch)
    (check,) = options_checks("SPY", cfg())
    assert check["code"] == "OPTIONS_UNAVAILABLE" and check["passed"]
    assert "TimeoutError" in check["message"]


def test_gate_disabled(settings):
    (check,) = options_checks("SPY", cfg(options_enabled=False))
    assert check["code"] == "OPTIONS_DISABLED" and check["passed"]


def test_gate_through_the_polygon_client_against_a_local_fake(settings, httpx_mock):
    settings.POLYGON_API_KEY = "test-key"
    settings.POLYGON_REST_URL = "http://127.0.0.1:9"
    httpx_mock.add_response(
        url=re.compile(r"http://127\.0\.0\.1:9/v3/snapshot/options/SPY.*"), json=CHAIN
    )
    checks = options_checks("SPY", cfg(options_min_volume=5, options_max_iv=0.5))
    assert all(c["passed"] for c in checks)
    assert "options volume 8" in checks[0]["message"]


@pytest.mark.django_db
def test_options_blocked_signal_through_the_live_path(settings):
    settings.ENABLED_SETUPS = ["EMA_CROSS"]
    settings.OPTIONS_MIN_VOLUME = 500
    options_fetcher_set(lambda u: CHAIN["results"])
    seq = sequences.ema_cross()
    bars_upsert(bars=seq.bars)
    (s,) = [x for b in seq.bars for x in evaluate_bar(symbol="SPY", bar_ts=b.ts)]
    assert s.outcome == "options_blocked" and s.reasons == ["OPTIONS_VOLUME"]
    lines = [json.loads(x) for x in settings.EVENTS_JOURNAL.read_text().splitlines()]
    assert lines[-1]["outcome"] == "options_blocked"
