"""The live dashboard in a real browser: log in, watch a replay fill the chart over the websocket,
see a new signal (with its block reasons) appear without a reload, halt trading from the page and
find the state changed in the API."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connections

from marketdata.replay import replay_bars, synthetic_sessions
from marketdata.services import bars_upsert
from strategies.models import Signal
from tests.browser.conftest import in_thread
from trading.models import Fill, Order, Position, Trade

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct-horse-battery"
HISTORY_BARS = 390 + 60  # one full session and the first hour of the next
REPLAY_BARS = 60
WAIT_MS = 30_000


def _bars():
    return synthetic_sessions(symbol="SPY", sessions=2, seed=11, end=date(2026, 3, 6))


def _trader(*, can_trade: bool):
    user = get_user_model().objects.create_user(username="trader", password=PASSWORD)
    if can_trade:
        user.user_permissions.add(Permission.objects.get(codename="can_trade"))
    return user


def _seed_ledger(history) -> None:
    """One managed trade in progress, as the trading stage leaves it in the ledger."""
    last = history[-1]
    entry_bar = history[-20]
    entry = Decimal(str(entry_bar.close))
    atr = Decimal("0.60")
    signal = Signal.objects.create(
        setup="VWAP_RECLAIM",
        symbol="SPY",
        execution_symbol="SPY",
        bar_ts=entry_bar.ts,
        entry_price=entry,
        stop_price=entry - Decimal("1.2") * atr,
        target_one=entry + atr,
        target_two=entry + 2 * atr,
        qty=138,
        outcome="dry_run",
    )
    trade = Trade.objects.create(
        signal=signal,
        setup="VWAP_RECLAIM",
        symbol="SPY",
        execution_symbol="SPY",
        qty=138,
        remaining_qty=138,
        entry_price=entry,
        stop_price=entry - Decimal("1.2") * atr,
        initial_stop_price=entry - Decimal("1.2") * atr,
        target_one=entry + atr,
        target_two=entry + 2 * atr,
        status="open",
        opened_at=entry_bar.ts + timedelta(minutes=1),
        deadline=entry_bar.ts + timedelta(minutes=46),
        created_at=entry_bar.ts + timedelta(minutes=1),
    )
    order = Order.objects.create(
        tag=f"{signal.tag}-entry",
        signal=signal,
        trade=trade,
        symbol="SPY",
        side="buy",
        qty=138,
        order_type="market",
        status="filled",
        filled_qty=138,
        avg_fill_price=entry,
        created_at=entry_bar.ts + timedelta(minutes=1),
    )
    Fill.objects.create(
        order=order,
        broker_fill_id="paper-1",
        symbol="SPY",
        side="buy",
        qty=138,
        price=entry,
        ts=entry_bar.ts + timedelta(minutes=1, seconds=2),
    )
    Order.objects.create(
        tag=f"{signal.tag}-t1",
        trade=trade,
        role="target_one",
        symbol="SPY",
        side="sell",
        qty=69,
        order_type="limit",
        price=entry + atr,
        status="open",
        created_at=entry_bar.ts + timedelta(minutes=1, seconds=3),
    )
    Position.objects.create(
        symbol="SPY", qty=138, avg_price=entry, last_price=Decimal(str(last.close))
    )


def _login(page, base_url: str) -> None:
    page.goto(f"{base_url}/")
    assert "/login/" in page.url  # the dashboard requires a login
    page.fill("#id_username", "trader")
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{base_url}/")


def _bars_on_chart(page) -> int:
    return int(page.get_attribute("#chart-SPY", "data-bars"))


def test_dashboard_fills_live_during_a_replay_and_halts_trading(
    asgi_server, browser, screenshot_dir
):
    bars = _bars()
    history, replay = bars[:HISTORY_BARS], bars[HISTORY_BARS : HISTORY_BARS + REPLAY_BARS]
    in_thread(bars_upsert, bars=history)
    in_thread(_seed_ledger, history)
    in_thread(_trader, can_trade=True)

    page = browser.new_page(viewport={"width": 1600, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, asgi_server.url)

    # First paint over the websocket: the stored history, the open trade, the seeded fill.
    page.wait_for_selector("#conn-status[data-state=live]", timeout=WAIT_MS)
    page.wait_for_function(
        f"document.querySelector('#chart-SPY')?.dataset.bars === '{HISTORY_BARS}'",
        timeout=WAIT_MS,
    )
    page.wait_for_selector("#trades-table tbody tr[data-trade-id]", timeout=WAIT_MS)
    assert page.locator("#orders-table tbody tr").count() == 2
    assert page.locator("#fills-table tbody tr").count() == 1
    assert page.text_content("#trading-state") == "ACTIVE"
    page.evaluate("window.__sameDocument = 42")  # gone if the page reloads

    # Replay the next hour through the live path (store, then publish on the channel layer).
    stats = {}

    def run_replay():
        try:
            stats["result"] = replay_bars(replay, speed=600.0)  # 0.1 s per bar
        finally:
            connections.close_all()

    worker = threading.Thread(target=run_replay, daemon=True)
    worker.start()
    page.wait_for_function(
        f"Number(document.querySelector('#chart-SPY').dataset.bars) >= {HISTORY_BARS + 10}",
        timeout=WAIT_MS,
    )
    assert page.evaluate("window.__sameDocument") == 42

    # A new signal is journaled mid-replay: it shows up with its block reasons, no reload.
    blocked = in_thread(
        Signal.objects.create,
        setup="ORB",
        symbol="SPY",
        execution_symbol="SPY",
        bar_ts=replay[10].ts,
        entry_price=Decimal(str(replay[10].close)),
        outcome="risk_blocked",
        reasons=["MAX_CONCURRENT"],
        checks=[
            {"stage": "risk", "code": "TRADING_WINDOW", "passed": True, "message": "inside"},
            {
                "stage": "risk",
                "code": "MAX_CONCURRENT",
                "passed": False,
                "message": "1 open trade(s), limit 1",
            },
        ],
    )
    row = page.wait_for_selector(f"#signal-feed li[data-signal-id='{blocked.pk}']", timeout=WAIT_MS)
    assert "MAX_CONCURRENT: 1 open trade(s), limit 1" in row.text_content()
    assert row.get_attribute("data-outcome") == "risk_blocked"
    page.screenshot(path=str(screenshot_dir / "dashboard-mid-replay.png"), full_page=True)
    assert page.evaluate("window.__sameDocument") == 42

    worker.join(timeout=60)
    assert not worker.is_alive()
    assert stats["result"].published == REPLAY_BARS
    page.wait_for_function(
        f"document.querySelector('#chart-SPY').dataset.bars === '{HISTORY_BARS + REPLAY_BARS}'",
        timeout=WAIT_MS,
    )
    # The market clock follows the replay: bar by bar, then past the last bar (closing 11:30
    # ET) minute by minute to three minutes after the day's flat time, so clock exits fire
    # without bars (marketdata.replay.day_clock_end).
    from zoneinfo import ZoneInfo

    from marketdata.replay import day_clock_end

    end = in_thread(day_clock_end, replay[-1].ts)
    shown = end.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M:%S")
    page.wait_for_function(
        f"document.querySelector('#market-clock').textContent.endsWith('{shown}')",
        timeout=WAIT_MS,
    )
    page.wait_for_timeout(500)  # let the chart paint before the picture (not an assertion)
    page.screenshot(path=str(screenshot_dir / "dashboard-replay.png"), full_page=True)
    assert page.evaluate("window.__sameDocument") == 42

    # Halt from the page; the API reports it.
    page.fill("#state-reason", "browser test: halt")
    page.click("#btn-halt")
    page.wait_for_selector("#trading-state[data-state=HALTED]", timeout=WAIT_MS)
    api = page.request.get(f"{asgi_server.url}/api/v1/trading/state")
    assert api.status == 200
    body = api.json()
    assert body["state"] == "HALTED"
    assert body["reason"] == "browser test: halt"
    assert body["changed_by"] == "trader"
    page.screenshot(path=str(screenshot_dir / "dashboard-halted.png"), full_page=False)

    # Resume asks for confirmation first.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#btn-resume")
    page.wait_for_selector("#trading-state[data-state=ACTIVE]", timeout=WAIT_MS)
    assert page.request.get(f"{asgi_server.url}/api/v1/trading/state").json()["state"] == "ACTIVE"
    assert errors == []


def test_dashboard_without_trading_permission_is_read_only(asgi_server, browser):
    in_thread(bars_upsert, bars=_bars()[:120])
    in_thread(_trader, can_trade=False)
    page = browser.new_page()
    _login(page, asgi_server.url)
    page.wait_for_selector("#conn-status[data-state=live]", timeout=WAIT_MS)
    assert page.locator("#btn-halt").count() == 0
    assert "read-only" in page.text_content(".state-card")
    # The write itself is refused too, not only hidden.
    token = page.evaluate(
        "document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1]"
    )
    response = page.request.post(
        f"{asgi_server.url}/dashboard/trading-state",
        form={"state": "HALTED"},
        headers={"X-CSRFToken": token, "Referer": f"{asgi_server.url}/"},
    )
    assert response.status == 403


def _db_sessions() -> int:
    """Sessions PostgreSQL has counted on the test database (each closed connection adds one;
    the server runs with DB_CONN_MAX_AGE=0, so every database read of the page is a session)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def _db_sessions_settled(page) -> int:
    """The session count once nothing else is still closing: two reads in a row that differ by
    exactly one (the first read's own session). On a loaded machine the sessions of the page's
    first load are counted late; starting the idle window before they land would blame them on
    the idle page."""
    previous = in_thread(_db_sessions)
    for _ in range(40):
        page.wait_for_timeout(500)
        current = in_thread(_db_sessions)
        if current - previous == 1:
            return current
        previous = current
    raise AssertionError("the database session count never settled (another client is active)")


def _entry_filled(price: Decimal) -> int:
    """What the trading stage commits when an entry fills: the order and its fill, at once."""
    from django.db import transaction
    from django.utils import timezone

    with transaction.atomic():
        now = timezone.now()
        order = Order.objects.create(
            tag="browser-push-entry",
            symbol="SPY",
            side="buy",
            qty=25,
            order_type="market",
            status="filled",
            filled_qty=25,
            avg_fill_price=price,
            created_at=now,
        )
        fill = Fill.objects.create(
            order=order,
            broker_fill_id="browser-push-1",
            symbol="SPY",
            side="buy",
            qty=25,
            price=price,
            ts=now,
        )
    return fill.pk


def test_a_fill_reaches_the_dashboard_pushed_not_polled(
    asgi_server_private_redis, browser, screenshot_dir
):
    # The server's channel layer is a Redis of this test's own, so no other process's events
    # (nor a blip of the shared Redis, which refreshes the panels once) touch the idle window.
    asgi_server = asgi_server_private_redis
    in_thread(bars_upsert, bars=_bars()[:120])
    in_thread(_trader, can_trade=False)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, asgi_server.url)
    page.wait_for_selector("#conn-status[data-state=live]", timeout=WAIT_MS)
    page.wait_for_selector("body[data-mode=push]", timeout=WAIT_MS)
    page.wait_for_function(
        "document.querySelector('#chart-SPY')?.dataset.bars === '120'", timeout=WAIT_MS
    )
    assert page.locator("#fills-table tbody tr").count() == 0

    # Idle: the open page costs the database nothing (the old page polled ~9 queries/s).
    before = _db_sessions_settled(page)  # this read's own session is counted when it closes
    page.wait_for_timeout(3000)
    idle_sessions = in_thread(_db_sessions) - before - 1
    assert idle_sessions == 0

    fill_id = in_thread(_entry_filled, Decimal("501.75"))
    row = page.wait_for_selector(f"#fills-table tr[data-fill-id='{fill_id}']", timeout=WAIT_MS)
    assert "501.75" in row.text_content()
    page.screenshot(path=str(screenshot_dir / "dashboard-pushed-fill.png"), full_page=False)
    assert errors == []


def test_panels_show_stale_when_redis_dies_and_recover_when_it_returns(
    asgi_server_private_redis, private_redis, browser, screenshot_dir
):
    in_thread(bars_upsert, bars=_bars()[:120])
    in_thread(_trader, can_trade=False)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _login(page, asgi_server_private_redis.url)
    page.wait_for_selector("body[data-mode=push]", timeout=WAIT_MS)
    assert page.get_attribute("body", "data-stale") is None

    private_redis.stop()
    page.wait_for_selector("body[data-stale='1']", timeout=WAIT_MS)
    assert "Stale since" in page.text_content("#stale-banner")
    page.screenshot(path=str(screenshot_dir / "dashboard-stale.png"), full_page=False)
    fill_id = in_thread(_entry_filled, Decimal("499.10"))  # trading goes on meanwhile

    private_redis.start()
    page.wait_for_function("!document.body.dataset.stale", timeout=WAIT_MS)
    assert page.is_hidden("#stale-banner")
    # The write made during the outage is on the page once it is live again.
    page.wait_for_selector(f"#fills-table tr[data-fill-id='{fill_id}']", timeout=WAIT_MS)


def test_a_panel_in_flight_does_not_end_the_servers_stale_state(asgi_server, browser):
    """The consumer marks the page stale when Redis goes, but a panel snapshot it sent a moment
    before may still arrive after that status (seen in CI: the page cleared the banner and
    stayed live-looking for the whole outage). Only the server's live=true ends it. The
    websocket is routed through the test, which forwards everything and injects the two."""
    import json
    import re
    import time

    in_thread(bars_upsert, bars=_bars()[:120])
    in_thread(_trader, can_trade=False)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    routes, panels = [], []

    def route(ws):
        server = ws.connect_to_server()

        def from_server(message):
            if json.loads(message).get("type") == "panel":
                panels.append(message)
            ws.send(message)

        server.on_message(from_server)
        routes.append(ws)

    page.route_web_socket(re.compile(r".*/ws/live/$"), route)
    _login(page, asgi_server.url)
    page.wait_for_selector("body[data-mode=push]", timeout=WAIT_MS)
    for _ in range(60):
        if panels:
            break
        page.wait_for_timeout(250)
    assert panels and len(routes) == 1
    (ws,) = routes
    lost = {"type": "status", "live": False, "since": time.time(), "reason": "test: layer gone"}
    ws.send(json.dumps(lost))
    page.wait_for_selector("body[data-stale='1']", timeout=WAIT_MS)
    ws.send(panels[-1])  # the snapshot that was already on its way
    page.wait_for_timeout(500)
    assert page.get_attribute("body", "data-stale") == "1"
    assert page.is_visible("#stale-banner")
    ws.send(json.dumps({"type": "status", "live": True}))
    page.wait_for_function("!document.body.dataset.stale", timeout=WAIT_MS)


JUMP = (
    "name: JUMP\ncondition: close - prev(close) >= 0.085\nstop: close - 1\n"
    "target_one: close + 1\ntarget_two: close + 2\ncooldown_sec: 600\n"
)


def _jump_setup_on_stored_bars() -> None:
    from strategies.setup_services import user_setup_save
    from tests.strategies.test_real_sessions import load_bars

    bars_upsert(bars=[b for b in load_bars("data/SPY_1m_2011-01.csv") if b.ts.day in (3, 4)])
    user_setup_save(text=JUMP, actor="alice")


def test_setup_preview_draws_its_fires_as_chart_markers(asgi_server, browser, screenshot_dir):
    # JUMP fires twice on the stored bars of 2011-01-04, at 15:00Z and 19:40Z (worked out in
    # tests/api/test_setups_api.py); the dashboard draws both next to the live markers.
    in_thread(_jump_setup_on_stored_bars)
    in_thread(_trader, can_trade=False)
    page = browser.new_page(viewport={"width": 1600, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, asgi_server.url)
    page.wait_for_selector("#chart-SPY[data-bars]:not([data-bars='0'])", timeout=WAIT_MS)
    page.wait_for_selector("#preview-setup option[value=JUMP]", state="attached", timeout=WAIT_MS)
    page.select_option("#preview-setup", "JUMP")
    page.click("#preview-btn")
    page.wait_for_selector("#chart-SPY[data-preview-markers='2']", timeout=WAIT_MS)
    assert page.text_content("#preview-status") == "JUMP: 2 fires on these bars"
    page.screenshot(path=str(screenshot_dir / "dashboard-setup-preview.png"), full_page=True)
    page.click("#preview-clear")
    page.wait_for_selector("#chart-SPY[data-preview-markers='0']", timeout=WAIT_MS)
    assert errors == []


def _drift_rows() -> None:
    from datetime import UTC, datetime

    from analytics.models import DriftEntry

    now = datetime(2026, 3, 6, 21, 45, tzinfo=UTC)
    base = {"symbol": "SPY", "execution_symbol": "SPY", "setup": "EMA_CROSS", "computed_at": now}
    DriftEntry.objects.create(
        **base, signal_ts=datetime(2026, 3, 6, 15, 0, tzinfo=UTC), status="matched",
        entry_slippage_bps=4.0, exit_slippage_bps=2.0, entry_delay_sec=1.0,
        live_pnl=Decimal("10"), sim_pnl=Decimal("12"),
    )  # fmt: skip
    DriftEntry.objects.create(
        **base, signal_ts=datetime(2026, 3, 6, 16, 0, tzinfo=UTC), status="matched",
        entry_slippage_bps=2.0, exit_slippage_bps=0.0, entry_delay_sec=3.0,
        live_pnl=Decimal("-5"), sim_pnl=Decimal("-4"),
    )  # fmt: skip
    DriftEntry.objects.create(
        **base, signal_ts=datetime(2026, 3, 6, 17, 0, tzinfo=UTC), status="missed",
    )  # fmt: skip


def test_drift_panel_shows_each_setups_drift(asgi_server, browser):
    in_thread(_drift_rows)
    in_thread(_trader, can_trade=False)
    page = browser.new_page()
    _login(page, asgi_server.url)
    row = page.wait_for_selector("#drift-table tr[data-setup=EMA_CROSS]", timeout=WAIT_MS)
    cells = [c.text_content() for c in row.query_selector_all("td")]
    # by hand: 3 pairs (2 matched + 1 missed), mean entry slippage (4 + 2) / 2 = 3.0 bps, exit
    # (2 + 0) / 2 = 1.0, entry delay (1 + 3) / 2 = 2.0 s, P&L 10 − 5 = 5 live, 12 − 4 = 8 sim.
    assert cells == ["EMA_CROSS", "3", "1", "0", "3.0", "1.0", "2.0", "5.00", "8.00"]
