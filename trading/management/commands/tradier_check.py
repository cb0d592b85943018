"""Check a Tradier account end to end before trusting it with DRY_RUN=0.

With the trader's own (sandbox) credentials: the profile lists the account, balances read,
the account event stream connects, a tiny tagged limit order far from the market is placed,
seen on the stream and by its tag, then cancelled (and the cancel seen). Prints what worked.
Every request goes through the shared request budget. Nothing here touches the ledger.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from autotrader_site.clock import clock


@dataclass
class Step:
    name: str
    ok: bool | None  # None: skipped
    detail: str


class StreamTap:
    """Listen on the account websocket in a thread and keep every order event."""

    def __init__(self, url: str, sessionid: str) -> None:
        self.url = url
        self.sessionid = sessionid
        self.events: list[dict] = []
        self.error = ""
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StreamTap:
        self._thread.start()
        self.ready.wait(10)
        return self

    def _run(self) -> None:
        from websockets.sync.client import connect

        try:
            with connect(self.url, open_timeout=10, close_timeout=2) as ws:
                ws.send(json.dumps({"events": ["order"], "sessionid": self.sessionid}))
                self.ready.set()
                while not self._stop.is_set():
                    try:
                        raw = ws.recv(timeout=0.2)
                    except TimeoutError:
                        continue
                    message = json.loads(raw)
                    if isinstance(message, dict) and message.get("event") == "order":
                        self.events.append(message)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    def wait_for(self, order_id: str, statuses: tuple[str, ...], timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if str(event.get("id")) == order_id and event.get("status") in statuses:
                    return event
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Command(BaseCommand):
    help = "Profile, balances, stream and a far-from-market tagged order placed and cancelled."

    def add_arguments(self, parser):
        parser.add_argument("--symbol", default="SPY")
        parser.add_argument(
            "--fraction", default="0.5", help="limit price as a fraction of the bid (far away)"
        )
        parser.add_argument("--timeout", type=float, default=15.0, help="seconds per wait")
        parser.add_argument("--ws-url", help="websocket URL overriding TRADIER_ACCOUNT_WS_URL")
        parser.add_argument(
            "--no-order", action="store_true", help="read-only: skip the order steps"
        )

    def handle(self, *args, **options):
        from marketdata.clients.tradier_budget import redis_client
        from trading.account_stream import Lease, _key
        from trading.brokers.base import BrokerError
        from trading.brokers.tradier import TradierBroker

        if not settings.TRADIER_ACCESS_TOKEN:
            raise CommandError("set TRADIER_ACCESS_TOKEN (and TRADIER_ACCOUNT_ID) to check")
        broker = TradierBroker.from_settings()
        steps: list[Step] = []
        account = settings.TRADIER_ACCOUNT_ID
        timeout = options["timeout"]

        def run(name, fn):
            try:
                ok, detail = fn()
            except BrokerError as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            steps.append(Step(name, ok, detail))
            return ok

        def profile():
            data = broker.profile()
            accounts = data.get("account") or []
            accounts = accounts if isinstance(accounts, list) else [accounts]
            numbers = [str(a.get("account_number")) for a in accounts]
            return account in numbers, f"{data.get('name', '')} accounts {', '.join(numbers)}"

        def balances():
            b = broker.balances()
            kind = b.raw.get("account_type", "")
            return True, f"{kind} equity {b.equity} cash {b.cash} buying power {b.buying_power}"

        run("profile lists TRADIER_ACCOUNT_ID", profile)
        run("balances", balances)

        lease = Lease(redis_client(), _key(account, "owner"), settings.ACCOUNT_STREAM_LEASE_SEC)
        tap = None
        if not lease.acquire():
            steps.append(
                Step("account stream", None, f"owned by {lease.owner()}: not opening a second")
            )
        else:
            try:
                sid, url = broker.events_session()
                target = options.get("ws_url") or settings.TRADIER_ACCOUNT_WS_URL or url
                tap = StreamTap(target, sid).start()
                steps.append(
                    Step("account stream", not tap.error, tap.error or f"connected to {target}")
                )
                if tap.error:
                    tap = None
            except BrokerError as exc:
                steps.append(Step("account stream", False, str(exc)))
        try:
            if not options["no_order"]:
                self._order_steps(broker, options, steps, tap, timeout, run)
        finally:
            if tap is not None:
                tap.stop()
            lease.release()
        self._print(steps)
        if any(step.ok is False for step in steps):
            raise CommandError("tradier_check: some steps failed (see the table)")

    def _order_steps(self, broker, options, steps, tap, timeout, run) -> None:
        from trading.brokers.base import OrderRequest

        symbol = options["symbol"].upper()
        quote = broker.quote(symbol)
        reference = (quote.bid or quote.last) if quote else None
        if not reference:
            steps.append(Step("quote", False, f"no quote for {symbol}"))
            return
        steps.append(Step("quote", True, f"{symbol} bid {quote.bid} ask {quote.ask}"))
        price = max(
            Decimal("0.01"),
            (reference * Decimal(options["fraction"])).quantize(Decimal("0.01"), ROUND_DOWN),
        )
        tag = f"at-check-{clock.now():%Y%m%d%H%M%S}"
        request = OrderRequest(symbol, "buy", 1, "limit", tag, price=price, duration="day")
        placed: dict = {}

        def place():
            ack = broker.submit(request)
            placed["id"] = ack.id
            return True, f"order {ack.id}: buy 1 {symbol} limit {price} tag {tag}"

        if not run("place far-from-market limit", place):
            return
        order_id = placed["id"]
        if tap is not None:
            event = tap.wait_for(order_id, ("open", "pending", "partially_filled"), timeout)
            steps.append(
                Step(
                    "order seen on the stream",
                    event is not None,
                    f"status {event['status']}" if event else f"no event within {timeout:.0f}s",
                )
            )

        def by_tag():
            found = broker.orders_by_tag(tag)
            ids = [o.id for o in found]
            return ids == [order_id], f"tag {tag}: orders {ids}"

        run("order found by tag", by_tag)

        def cancel():
            broker.cancel(order_id)
            status = broker.order(order_id).status
            return status == "canceled", f"status after cancel: {status}"

        run("cancel (read back)", cancel)
        if tap is not None:
            event = tap.wait_for(order_id, ("canceled",), timeout)
            steps.append(
                Step(
                    "cancel seen on the stream",
                    event is not None,
                    "canceled" if event else f"no event within {timeout:.0f}s",
                )
            )

    def _print(self, steps: list[Step]) -> None:
        width = max(len(s.name) for s in steps)
        self.stdout.write(f"{'step':<{width}}  result  detail")
        for step in steps:
            mark = "ok" if step.ok else "skipped" if step.ok is None else "FAILED"
            self.stdout.write(f"{step.name:<{width}}  {mark:<7} {step.detail}")
