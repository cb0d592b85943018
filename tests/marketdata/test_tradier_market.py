from __future__ import annotations

from datetime import UTC, date, datetime

import httpx
import pytest
import respx

from autotrader_site.metrics import TRADIER_REQUEST_TOTAL
from marketdata.clients.tradier_http import (
    TradierError,
    TradierHTTP,
    TradierRetryableError,
    TradierTransportError,
    as_list,
)
from marketdata.clients.tradier_market import TradierMarketData
from tests.marketdata.conftest import fixture_json, fixture_text

BASE = "http://127.0.0.1:8999/v1/"


def client(waits: list[float], retries: int = 3) -> TradierMarketData:
    http = TradierHTTP(
        base_url=BASE, token="tok", timeout=1.0, max_retries=retries, sleep=waits.append
    )
    return TradierMarketData(http)


def counter(endpoint: str, status: str) -> float:
    return TRADIER_REQUEST_TOTAL.labels(endpoint=endpoint, status=status)._value.get()


@respx.mock(base_url=BASE)
def test_quotes_many_single_and_unmatched(respx_mock, no_sleep):
    route = respx_mock.get("markets/quotes")
    md = client(no_sleep)

    route.return_value = httpx.Response(200, text=fixture_text("tradier/get_quotes_multiple.json"))
    many = md.quotes(["aapl", "TSLA240119P00250000"], greeks=True)
    assert set(many.quotes) == {"AAPL", "TSLA240119P00250000"}
    assert many.quotes["AAPL"]["bid"] == 185.54
    assert many.quotes["TSLA240119P00250000"]["greeks"]["mid_iv"] == pytest.approx(0.568797)
    assert route.calls.last.request.url.params["symbols"] == "AAPL,TSLA240119P00250000"
    assert route.calls.last.request.headers["authorization"] == "Bearer tok"

    route.return_value = httpx.Response(200, text=fixture_text("tradier/get_quotes_single.json"))
    assert md.quote("AAPL")["last"] == 186.07

    route.return_value = httpx.Response(
        200, text=fixture_text("tradier/get_quotes_parts_unmatch_symbol.json")
    )
    part = md.quotes(["AAPL", "SEFDF"])
    assert list(part.quotes) == ["AAPL"] and part.unmatched == ["SEFDF"]

    route.return_value = httpx.Response(
        200, text=fixture_text("tradier/get_quotes_unmatched_symbol.json")
    )
    none = md.quotes(["SEFDF"])
    assert none.quotes == {} and none.unmatched == ["SEFDF"]

    route.return_value = httpx.Response(
        200, text=fixture_text("tradier/get_quotes_with_greeks.json")
    )
    assert md.quote("TSLA240119P00250000")["open_interest"] == 31812


@respx.mock(base_url=BASE)
def test_timesales_become_utc_bars(respx_mock, no_sleep):
    route = respx_mock.get("markets/timesales").mock(
        return_value=httpx.Response(200, text=fixture_text("tradier/get_time_and_sale.json"))
    )
    start = datetime(2019, 5, 9, 13, 30, tzinfo=UTC)
    bars = client(no_sleep).timesales("spy", start=start, end=start, interval="5min")
    assert [b.ts for b in bars] == [
        datetime(2019, 5, 9, 13, 30, tzinfo=UTC),
        datetime(2019, 5, 9, 13, 31, tzinfo=UTC),
        datetime(2019, 5, 9, 13, 32, tzinfo=UTC),
    ]
    first = bars[0]
    assert (first.symbol, first.open, first.high, first.low, first.close) == (
        "SPY",
        200.46,
        200.53,
        198.76,
        200.1154,
    )
    assert first.volume == 1273841 and first.vwap == 199.77806 and first.source == "tradier"
    params = route.calls.last.request.url.params
    assert params["interval"] == "5min" and params["start"] == "2019-05-09 09:30"


@respx.mock(base_url=BASE)
def test_timesales_empty_and_bad_interval(respx_mock, no_sleep):
    respx_mock.get("markets/timesales").mock(
        return_value=httpx.Response(
            200, text=fixture_text("tradier/get_time_sale_invalid_param.json")
        )
    )
    start = datetime(2019, 5, 9, 13, 30, tzinfo=UTC)
    assert client(no_sleep).timesales("SPY", start=start, end=start) == []
    with pytest.raises(ValueError, match="interval"):
        client(no_sleep).timesales("SPY", start=start, end=start, interval="2min")


@respx.mock(base_url=BASE)
def test_history_list_single_and_empty(respx_mock, no_sleep):
    route = respx_mock.get("markets/history")
    md = client(no_sleep)
    route.return_value = httpx.Response(
        200, text=fixture_text("tradier/get_historical_quotes.json")
    )
    rows = md.history("AAPL", start=date(2019, 1, 2), end=date(2019, 1, 4))
    assert [r["date"] for r in rows] == [date(2019, 1, 2), date(2019, 1, 3), date(2019, 1, 4)]
    assert rows[1]["close"] == 142.19 and rows[1]["volume"] == 91312195
    route.return_value = httpx.Response(
        200, text=fixture_text("tradier/get_historical_quotes_non_list.json")
    )
    assert len(md.history("AAPL", start=date(2019, 1, 2), end=date(2019, 1, 2))) == 1
    route.return_value = httpx.Response(
        200, text=fixture_text("tradier/get_historical_quotes_invalid_param.json")
    )
    assert md.history("AAPL", start=date(2019, 1, 2), end=date(2019, 1, 2)) == []


@respx.mock(base_url=BASE)
def test_clock_and_calendar(respx_mock, no_sleep):
    respx_mock.get("markets/clock").mock(
        return_value=httpx.Response(200, text=fixture_text("tradier/get_clock.json"))
    )
    cal = respx_mock.get("markets/calendar").mock(
        return_value=httpx.Response(200, text=fixture_text("tradier/get_calendar.json"))
    )
    md = client(no_sleep)
    assert md.clock()["state"] == "open"
    days = md.calendar(year=2024, month=1)
    expected = fixture_json("tradier/get_calendar.json")["calendar"]["days"]["day"]
    assert len(days) == len(expected)
    assert days[0]["status"] == "closed"
    assert days[1]["open"] == {"start": "09:30", "end": "16:00"}
    assert cal.calls.last.request.url.params["month"] == "01"
    cal.return_value = httpx.Response(
        200, text=fixture_text("tradier/get_calendar_invalid_param.json")
    )
    assert md.calendar(year=2024, month=13) == []


@respx.mock(base_url=BASE)
def test_retries_429_then_succeeds_honouring_retry_after(respx_mock, no_sleep):
    before_429 = counter("quotes", "429")
    before_200 = counter("quotes", "200")
    respx_mock.get("markets/quotes").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}, text="slow down"),
            httpx.Response(503, text="busy"),
            httpx.Response(200, text=fixture_text("tradier/get_quotes_single.json")),
        ]
    )
    assert client(no_sleep).quote("AAPL")["symbol"] == "AAPL"
    assert no_sleep[0] == 3.0  # the server's hint
    assert 0 <= no_sleep[1] <= 8.0  # jittered backoff
    assert counter("quotes", "429") == before_429 + 1
    assert counter("quotes", "200") == before_200 + 1


@respx.mock(base_url=BASE)
def test_rate_limit_headers_give_the_wait(respx_mock, no_sleep):
    expiry_ms = 2_000_000_000_000
    http = TradierHTTP(base_url=BASE, token="t", max_retries=1, sleep=no_sleep.append)
    respx_mock.get("markets/clock").mock(
        side_effect=[
            httpx.Response(
                429,
                headers={"X-Ratelimit-Available": "0", "X-Ratelimit-Expiry": str(expiry_ms)},
            ),
            httpx.Response(200, text=fixture_text("tradier/get_clock.json")),
        ]
    )
    # the wait is bounded so a bogus expiry never parks the worker
    assert TradierMarketData(http).clock()["state"] == "open"
    assert 0 < no_sleep[0] <= 60.0


@respx.mock(base_url=BASE)
def test_timeouts_retry_then_raise_clear_error(respx_mock, no_sleep):
    route = respx_mock.get("markets/clock").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TradierTransportError, match="clock: ReadTimeout"):
        client(no_sleep, retries=2).clock()
    assert route.call_count == 3 and len(no_sleep) == 2


@respx.mock(base_url=BASE)
def test_4xx_is_not_retried_and_5xx_exhausts(respx_mock, no_sleep):
    route = respx_mock.get("markets/clock").mock(
        return_value=httpx.Response(401, text="Invalid Access Token")
    )
    with pytest.raises(TradierError, match="401 Invalid Access Token"):
        client(no_sleep).clock()
    assert route.call_count == 1
    route.mock(return_value=httpx.Response(502))
    with pytest.raises(TradierRetryableError):
        client(no_sleep, retries=1).clock()
    assert route.call_count == 3


@respx.mock(base_url=BASE)
def test_non_idempotent_post_retries_only_429(respx_mock, no_sleep):
    http = TradierHTTP(base_url=BASE, token="t", max_retries=3, sleep=no_sleep.append)
    route = respx_mock.post("accounts/X/orders").mock(
        side_effect=[httpx.Response(429), httpx.Response(500)]
    )
    with pytest.raises(TradierRetryableError) as err:
        http.post("/accounts/X/orders", endpoint="orders", data={"class": "equity"})
    assert err.value.status == 500 and route.call_count == 2
    route.mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(TradierTransportError):
        http.post("/accounts/X/orders", endpoint="orders", data={"class": "equity"})
    assert route.call_count == 3  # one more attempt only: a timeout is not retried


@respx.mock(base_url=BASE)
def test_null_body_and_errors_in_200(respx_mock, no_sleep):
    http = TradierHTTP(base_url=BASE, token="t", max_retries=0)
    respx_mock.get("a").mock(return_value=httpx.Response(200, text="null"))
    assert http.get("/a", endpoint="a") == {}
    respx_mock.get("b").mock(
        return_value=httpx.Response(200, json={"errors": {"error": "Invalid parameter"}})
    )
    with pytest.raises(TradierError, match="Invalid parameter"):
        http.get("/b", endpoint="b")
    respx_mock.get("c").mock(return_value=httpx.Response(200, text="<html>"))
    with pytest.raises(TradierError, match="non-JSON"):
        http.get("/c", endpoint="c")


def test_as_list_shapes():
    assert as_list(None) == [] and as_list("null") == [] and as_list({"a": 1}) == [{"a": 1}]
    assert as_list([{"a": 1}, "null"]) == [{"a": 1}]
