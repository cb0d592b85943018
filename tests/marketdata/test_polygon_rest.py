from __future__ import annotations

from datetime import UTC, date, datetime

import httpx
import pytest
import respx

from autotrader_site.metrics import POLYGON_REQUEST_TOTAL
from marketdata.clients.polygon_rest import PolygonError, PolygonNotEnabled, PolygonREST
from tests.marketdata.conftest import fixture_json, fixture_text

BASE = "http://127.0.0.1:8998"


def client(waits: list[float], *, use_equity: bool = True) -> PolygonREST:
    return PolygonREST(
        base_url=BASE, api_key="k", max_retries=2, use_equity=use_equity, sleep=waits.append
    )


@respx.mock(base_url=BASE)
def test_aggs_parse_fixture(respx_mock, no_sleep):
    route = respx_mock.get("/v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04").mock(
        return_value=httpx.Response(200, text=fixture_text("polygon/v2_aggs_AAPL_day.json"))
    )
    bars = client(no_sleep).aggs(
        "AAPL", start=date(2005, 4, 1), end=date(2005, 4, 4), timespan="day", source="rest_backfill"
    )
    raw = fixture_json("polygon/v2_aggs_AAPL_day.json")["results"]
    assert len(bars) == len(raw) == 2
    assert bars[0].ts == datetime.fromtimestamp(raw[0]["t"] / 1000, tz=UTC)
    assert (bars[0].open, bars[0].high, bars[0].low, bars[0].close) == (
        1.5032,
        1.5064,
        1.4489,
        1.4604,
    )
    assert bars[0].volume == 642646396.0 and bars[0].vwap == 1.469 and bars[0].trades == 82132
    assert route.calls.last.request.headers["authorization"] == "Bearer k"


@respx.mock(base_url=BASE)
def test_aggs_index_ticker_and_next_url(respx_mock, no_sleep):
    page2 = f"{BASE}/v2/aggs/page2?cursor=abc"
    respx_mock.get(url__regex=r".*/v2/aggs/ticker/I:SPX/range/1/minute/.*").mock(
        return_value=httpx.Response(
            200,
            json={
                "status": "OK",
                "results": [{"o": 1, "h": 2, "l": 0.5, "c": 1.5, "t": 1_700_000_000_000}],
                "next_url": page2,
            },
        )
    )
    respx_mock.get("/v2/aggs/page2").mock(
        return_value=httpx.Response(
            200,
            json={
                "status": "OK",
                "results": [{"o": 1, "h": 2, "l": 0.5, "c": 1.6, "t": 1_700_000_060_000}],
            },
        )
    )
    start = datetime(2023, 11, 14, 22, 13, tzinfo=UTC)
    bars = client(no_sleep, use_equity=False).aggs("SPX", start=start, end=start)
    assert [b.symbol for b in bars] == ["SPX", "SPX"]
    assert [b.close for b in bars] == [1.5, 1.6] and bars[0].volume == 0.0


def test_equity_aggs_refused_when_switch_off(no_sleep):
    with pytest.raises(PolygonNotEnabled, match="USE_POLYGON_EQUITY"):
        client(no_sleep, use_equity=False).aggs("SPY", start=date(2025, 1, 2), end=date(2025, 1, 2))


@respx.mock(base_url=BASE)
def test_options_snapshot_flattens_chain(respx_mock, no_sleep):
    respx_mock.get("/v3/snapshot/options/AAPL").mock(
        return_value=httpx.Response(
            200, text=fixture_text("polygon/v3_snapshot_options_AAPL_chain.json")
        )
    )
    rows = client(no_sleep).options_snapshot("aapl")
    assert len(rows) == 1
    row = rows[0]
    assert row["ticker"] == "O:AAPL230616C00150000"
    assert row["volume"] == 8 and row["open_interest"] == 8133
    assert row["implied_volatility"] == pytest.approx(0.3570277203465058)
    assert row["greeks"]["delta"] == pytest.approx(0.6436614934293701)
    assert row["bid"] == 28.9 and row["ask"] == 29.25 and row["strike"] == 150
    assert row["underlying_price"] == 159.9606


@respx.mock(base_url=BASE)
def test_option_contract_snapshot(respx_mock, no_sleep):
    respx_mock.get("/v3/snapshot/options/AAPL/O:AAPL230616C00150000").mock(
        return_value=httpx.Response(
            200, text=fixture_text("polygon/v3_snapshot_option_contract.json")
        )
    )
    row = client(no_sleep).option_contract_snapshot("AAPL", "O:AAPL230616C00150000")
    assert row["open_interest"] == 8133 and row["contract_type"] == "call"


@respx.mock(base_url=BASE)
def test_indices_snapshot_keeps_per_ticker_errors(respx_mock, no_sleep):
    route = respx_mock.get("/v3/snapshot/indices").mock(
        return_value=httpx.Response(200, text=fixture_text("polygon/v3_snapshot_indices.json"))
    )
    snap = client(no_sleep).indices_snapshot(["SPX", "APx", "APy"])
    assert snap["SPX"]["value"] == 3822.39
    assert snap["APY"]["error"] == "NOT_ENTITLED"
    assert snap["APX"]["error"] == "NOT_FOUND"
    assert route.calls.last.request.url.params["ticker.any_of"] == "I:SPX,APX,APY"


@respx.mock(base_url=BASE)
def test_retry_then_count_and_403_is_clear(respx_mock, no_sleep):
    ok = POLYGON_REQUEST_TOTAL.labels(endpoint="options_snapshot", status="200")._value.get()
    route = respx_mock.get("/v3/snapshot/options/SPY").mock(
        side_effect=[
            httpx.Response(500),
            httpx.Response(200, json={"status": "OK", "results": []}),
        ]
    )
    assert client(no_sleep).options_snapshot("SPY") == []
    assert route.call_count == 2
    assert (
        POLYGON_REQUEST_TOTAL.labels(endpoint="options_snapshot", status="200")._value.get()
        == ok + 1
    )
    route.mock(
        side_effect=None,
        return_value=httpx.Response(
            403, json={"status": "NOT_AUTHORIZED", "message": "You are not entitled"}
        ),
    )
    with pytest.raises(PolygonError, match="403 You are not entitled"):
        client(no_sleep).options_snapshot("SPY")
