"""The webhook notifier against a real local HTTP receiver."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wiring.alerts import alert_send, alert_send_background


class _Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 204
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-part"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    r = _Receiver()
    settings.ALERT_WEBHOOK_URL = r.url
    settings.ALERT_MIN_INTERVAL_SEC = 300
    yield r
    r.close()


def test_alert_posts_discord_and_slack_compatible_json(receiver):
    assert alert_send("kill_switch", "daily loss limit hit", day_pnl="-512.00", account="VA1")
    (body,) = receiver.bodies
    assert body["content"] == body["text"]
    assert body["content"].startswith("[AutoTrader] kill_switch: daily loss limit hit")
    assert "day_pnl: -512.00" in body["content"]


def test_alert_is_rate_limited_per_kind(receiver):
    assert alert_send("stream_stall", "no bars for 130 s")
    assert not alert_send("stream_stall", "no bars for 190 s")
    assert alert_send("order_rejected", "SPY buy 10 rejected")
    assert len(receiver.bodies) == 2


def test_alert_without_rate_limit_sends_every_time(receiver, settings):
    settings.ALERT_MIN_INTERVAL_SEC = 0
    assert alert_send("stream_stall", "a") and alert_send("stream_stall", "b")
    assert len(receiver.bodies) == 2


def test_failed_delivery_returns_false_logs_without_url_and_does_not_silence(receiver, caplog):
    receiver.status = 500
    with caplog.at_level(logging.WARNING, logger="wiring.alerts"):
        assert not alert_send("reconcile_failed", "broker unreachable")
    assert "500" in caplog.text and "secret-part" not in caplog.text
    receiver.status = 200
    assert alert_send("reconcile_failed", "broker unreachable")
    assert len(receiver.bodies) == 2


def test_secret_looking_fields_are_masked(receiver):
    alert_send("order_rejected", "x", api_token="abc123", symbol="SPY")
    content = receiver.bodies[0]["content"]
    assert "abc123" not in content and "api_token: ***" in content


def test_unreachable_webhook_does_not_raise(settings):
    settings.ALERT_WEBHOOK_URL = "http://127.0.0.1:1/hook"
    assert alert_send("stream_stall", "x") is False


def test_no_webhook_configured_is_a_no_op(settings):
    settings.ALERT_WEBHOOK_URL = ""
    assert alert_send("stream_stall", "x") is False


def test_background_send_delivers(receiver):
    alert_send_background("trading_state", "HALTED by ops").join(timeout=10)
    assert receiver.bodies and "HALTED by ops" in receiver.bodies[0]["content"]


def _wait_for(receiver, n: int) -> list[dict]:
    import time

    deadline = time.monotonic() + 10
    while len(receiver.bodies) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return receiver.bodies


@pytest.mark.django_db
def test_rejected_order_alerts(receiver, django_capture_on_commit_callbacks):
    from tests.api.conftest import T0
    from trading.models import Order, OrderEvent

    order = Order.objects.create(
        tag="at-rej-1",
        symbol="SPY",
        side="buy",
        qty=5,
        order_type="market",
        created_at=T0,
        status="rejected",
        reject_reason="buying power",
    )
    with django_capture_on_commit_callbacks(execute=True):
        OrderEvent.objects.create(order=order, from_status="submitted", to_status="rejected", at=T0)
    (body,) = _wait_for(receiver, 1)
    assert "order_rejected" in body["content"] and "buying power" in body["content"]


@pytest.mark.django_db
def test_kill_switch_halt_alerts(receiver, django_capture_on_commit_callbacks):
    from risk.services import trading_state_set

    with django_capture_on_commit_callbacks(execute=True):
        trading_state_set(state="HALTED", reason="daily loss limit", actor="kill_switch")
    (body,) = _wait_for(receiver, 1)
    assert body["content"].startswith("[AutoTrader] kill_switch: ACTIVE -> HALTED")
    assert "daily loss limit" in body["content"]


@pytest.mark.django_db
def test_watch_alerts_on_a_stalled_stream_during_the_session(receiver, settings):
    from datetime import UTC, datetime, timedelta

    from marketdata.models import Bar
    from wiring.alerts import alerts_watch

    now = datetime(2025, 3, 3, 16, 0, tzinfo=UTC)  # Monday 11:00 New York
    settings.STREAM_STALL_SEC = 120
    Bar.objects.create(symbol="SPY", ts=now - timedelta(minutes=10), open=1, high=1, low=1, close=1)
    assert alerts_watch(now=now) == ["stream_stall"]
    (body,) = _wait_for(receiver, 1)
    assert "no new bar during the session" in body["content"]
    saturday = datetime(2025, 3, 8, 16, 0, tzinfo=UTC)
    assert alerts_watch(now=saturday) == []
    fresh = now - timedelta(minutes=10) + timedelta(seconds=60)
    assert alerts_watch(now=fresh) == []


@pytest.mark.django_db
def test_watch_alerts_on_a_failed_reconciliation(receiver):
    from datetime import UTC, datetime

    from django.core.cache import cache

    from trading.selectors import RECONCILE_CACHE_KEY
    from wiring.alerts import alerts_watch

    saturday = datetime(2025, 3, 8, 16, 0, tzinfo=UTC)
    cache.set(RECONCILE_CACHE_KEY, {"ok": False, "at": "x", "error": "BrokerUnavailable"})
    assert alerts_watch(now=saturday) == ["reconcile_failed"]
    (body,) = _wait_for(receiver, 1)
    assert "BrokerUnavailable" in body["content"]


@pytest.mark.django_db
def test_startup_halt_and_same_state_changes_do_not_alert(
    receiver, django_capture_on_commit_callbacks
):
    import time

    from risk.services import trading_state_set

    with django_capture_on_commit_callbacks(execute=True):
        trading_state_set(state="HALTED", reason="startup reconciliation", actor="startup")
        trading_state_set(state="HALTED", reason="other words", actor="startup")
    with django_capture_on_commit_callbacks(execute=True):
        trading_state_set(state="ACTIVE", reason="resume", actor="ops")  # operator-less resume
    bodies = _wait_for(receiver, 1)
    time.sleep(0.2)  # let any stray alert thread deliver before counting
    assert len(bodies) == 1 and "trading_state: HALTED -> ACTIVE" in bodies[0]["content"]
