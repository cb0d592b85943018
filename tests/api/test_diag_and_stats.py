"""diag/providers (with a live check against a fake Tradier on 127.0.0.1) and stats/setups."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.api.conftest import T0, make_signal

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tradier"


@pytest.fixture
def fake_tradier(settings):
    body = (FIXTURES / "get_clock.json").read_bytes()
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.TRADIER_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1/"
    settings.TRADIER_ACCESS_TOKEN = "sandbox-token-SECRET"
    yield seen
    server.shutdown()
    server.server_close()


def test_providers_state_sandbox_facts(reader, settings):
    settings.TRADIER_ENV = "sandbox"
    settings.TRADIER_ACCESS_TOKEN = "tok-SECRET"
    settings.POLYGON_API_KEY = "poly-SECRET"
    resp = reader.get("/api/v1/diag/providers")
    assert resp.status_code == 200
    body = resp.json()
    assert body["tradier"]["data_delay_minutes"] == 15
    assert body["tradier"]["streaming_available"] is False
    assert body["tradier"]["configured"] is True and body["polygon"]["configured"] is True
    assert "SECRET" not in resp.content.decode()
    assert "check" not in body["tradier"]


def test_providers_check_calls_tradier_clock(reader, fake_tradier):
    resp = reader.get("/api/v1/diag/providers?check=1")
    check = resp.json()["tradier"]["check"]
    assert check["reachable"] is True and check["market_state"] == "open"
    assert fake_tradier[0]["path"] == "/v1/markets/clock"
    assert "SECRET" not in resp.content.decode()


def test_providers_check_unreachable_is_reported_not_raised(reader, settings):
    settings.TRADIER_BASE_URL = "http://127.0.0.1:1/v1/"
    settings.TRADIER_ACCESS_TOKEN = "tok"
    resp = reader.get("/api/v1/diag/providers?check=true")
    assert resp.status_code == 200
    assert resp.json()["tradier"]["check"]["reachable"] is False


def test_providers_bad_input_and_auth(reader, anon):
    assert reader.get("/api/v1/diag/providers?check=perhaps").status_code == 400
    assert anon.get("/api/v1/diag/providers").status_code in (401, 403)


def test_setup_stats_combine_journal_and_closed_trades(reader):
    from trading.models import Trade

    s1 = make_signal(setup="ORB", outcome="submitted")
    make_signal(setup="ORB", outcome="risk_blocked", bar_ts=T0 + timedelta(minutes=1))
    make_signal(setup="EMA_CROSS", outcome="dry_run", bar_ts=T0 + timedelta(minutes=2))
    for pnl, sig in ((Decimal("30"), s1), (Decimal("-10"), None)):
        Trade.objects.create(
            signal=sig,
            setup="ORB",
            symbol="SPY",
            execution_symbol="SPY",
            qty=10,
            stop_price=Decimal("1"),
            initial_stop_price=Decimal("1"),
            status="closed",
            realized_pnl=pnl,
            created_at=T0,
            closed_at=T0 + timedelta(minutes=5),
        )
    rows = {r["setup"]: r for r in reader.get("/api/v1/stats/setups").json()}
    orb = rows["ORB"]
    assert orb["signals"] == 2
    assert orb["outcomes"] == {"submitted": 1, "risk_blocked": 1}
    assert orb["trades"]["trades"] == 2 and orb["trades"]["win_rate"] == 0.5
    assert orb["trades"]["expectancy"] == 10.0
    assert rows["EMA_CROSS"]["trades"]["trades"] == 0
    later = (T0 + timedelta(minutes=2)).isoformat()
    rows = reader.get("/api/v1/stats/setups", {"since": later}).json()
    assert [r["setup"] for r in rows] == ["EMA_CROSS"]


def test_setup_stats_bad_input_and_auth(reader, anon):
    resp = reader.get("/api/v1/stats/setups?since=2025-03-04T00:00:00Z&until=2025-03-03T00:00:00Z")
    assert resp.status_code == 400 and "until" in resp.json()
    assert reader.get("/api/v1/stats/setups?symbol=**").status_code == 400
    assert anon.get("/api/v1/stats/setups").status_code in (401, 403)


def test_health_payload_has_no_configuration_values(anon, settings):
    settings.TRADIER_ACCESS_TOKEN = "tok-SECRET"
    text = anon.get("/api/v1/diag/health").content.decode()
    assert "SECRET" not in text and json.loads(text)["checks"]
