"""The Tradier account event stream: one owner across processes, a session, the websocket,
and everything that keeps it honest (renewal, reconnect with backoff, heartbeat watchdog,
reconcile after every (re)connect). Run by `manage.py run_account_stream`.

Lifecycle (Tradier "Create an account streaming session", "Stream Account Events"):
1. Take the Redis lease `autotrader:account_stream:<account>:owner` (SET NX PX, renewed every
   third of its life; a process that cannot renew stops streaming at once). Tradier allows
   one streaming session per account, so only the lease owner ever asks for one.
2. `POST /v1/accounts/events/session` → a session id valid 5 minutes to connect; reused for
   reconnects within ACCOUNT_STREAM_SESSION_TTL_SEC, renewed after.
3. Connect to the websocket (TRADIER_ACCOUNT_WS_URL: wss://ws.tradier.com/v1/accounts/events,
   wss://sandbox-ws.tradier.com/... for sandbox) and send {"events":["order"],"sessionid":...}.
4. Reconcile once (whatever happened while no stream listened is found by the poll path), then
   apply every order event in arrival order (`trading.account_events.event_apply`).
5. Every `confirm_sec` / 2, accepted orders still `submitted` after `confirm_sec` (no event
   confirmed them; Tradier may reject after a 200) are read back with one GET each.
6. Any message (Tradier sends a heartbeat about once a minute) proves the stream alive; none
   for ACCOUNT_STREAM_HEARTBEAT_TIMEOUT_SEC → reconnect. While connected the flag
   `autotrader:account_stream:<account>:live` is set (TTL = the watchdog): pollers use
   `stream_is_live()` to fall back to polling when the stream is down.
7. Disconnects reconnect after a jittered exponential backoff (capped); SIGTERM closes the
   socket, releases the lease and returns within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings

from autotrader_site.clock import clock
from autotrader_site.metrics import ACCOUNT_STREAM_CONNECTED, ACCOUNT_STREAM_EVENTS_TOTAL

log = logging.getLogger(__name__)
HEARTBEAT_NAME = "account_stream"


def _key(account: str, what: str) -> str:
    return f"autotrader:account_stream:{account}:{what}"


def stream_is_live(redis=None, account: str | None = None) -> bool:
    """True while some process holds an open, recently heard-from account stream. False
    without Redis (then polling is the only path)."""
    from marketdata.clients.tradier_budget import redis_client

    redis = redis if redis is not None else redis_client()
    if redis is None:
        return False
    try:
        return bool(redis.exists(_key(account or settings.TRADIER_ACCOUNT_ID, "live")))
    except Exception:  # noqa: BLE001 - Redis down: assume no stream, poll
        return False


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """One owner across processes: a Redis key holding the owner's token with a TTL."""

    def __init__(self, redis, key: str, ttl_sec: float) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = int(ttl_sec * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renew = redis.register_script(_RENEW) if redis is not None else None
        self._release = redis.register_script(_RELEASE) if redis is not None else None

    def acquire(self) -> bool:
        if self.redis is None:
            return True  # no Redis: a single-process deployment owns it by definition
        return bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        if self.redis is None:
            return True
        return bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        if self.redis is not None:
            self._release(keys=[self.key], args=[self.token])

    def owner(self) -> str:
        if self.redis is None:
            return self.token
        value = self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else (value or "")


@dataclass
class StreamConfig:
    ws_url: str
    account: str
    lease_sec: float = 15.0
    heartbeat_timeout_sec: float = 150.0
    backoff_base_sec: float = 0.5
    backoff_max_sec: float = 30.0
    session_ttl_sec: float = 240.0
    reconcile_on_connect: bool = True
    confirm_sec: float = 2.0  # an accepted order unconfirmed this long is read back (GET)

    @classmethod
    def from_settings(cls) -> StreamConfig:
        return cls(
            ws_url=settings.TRADIER_ACCOUNT_WS_URL,
            account=settings.TRADIER_ACCOUNT_ID,
            lease_sec=settings.ACCOUNT_STREAM_LEASE_SEC,
            heartbeat_timeout_sec=settings.ACCOUNT_STREAM_HEARTBEAT_TIMEOUT_SEC,
            backoff_max_sec=settings.ACCOUNT_STREAM_BACKOFF_MAX_SEC,
            session_ttl_sec=settings.ACCOUNT_STREAM_SESSION_TTL_SEC,
            confirm_sec=settings.ORDER_CONFIRM_SEC,
        )


@dataclass
class StreamStats:
    connects: int = 0
    sessions: int = 0
    events: int = 0
    heartbeats: int = 0
    reconciles: int = 0
    drops: int = 0
    confirmed: int = 0
    outcomes: dict = field(default_factory=dict)
    last_message_at: float = 0.0


def backoff_delay(attempt: int, base: float, cap: float, rng=random.random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng() * min(cap, base * (2**attempt))


class AccountStream:
    """Owns the lease, the session and the websocket; applies events serially off-loop."""

    def __init__(
        self,
        config: StreamConfig,
        *,
        broker,
        redis=None,
        apply_event: Callable | None = None,
        reconcile: Callable | None = None,
        on_heartbeat: Callable | None = None,
        confirm: Callable | None = None,
    ) -> None:
        self.config = config
        self.broker = broker
        self.redis = redis
        self.lease = Lease(redis, _key(config.account, "owner"), config.lease_sec)
        self.apply_event = apply_event or self._apply_default
        self.reconcile = reconcile or self._reconcile_default
        self.on_heartbeat = on_heartbeat or self._heartbeat_default
        self.confirm = confirm or self._confirm_default
        self.stats = StreamStats()
        self.stopping = asyncio.Event()
        self.connected = asyncio.Event()
        self._session: tuple[str, str, float] | None = None  # (id, url, created monotonic)
        # ORM work runs in one thread, in arrival order, never on the event loop.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="account-events")
        self._ws = None

    # --- defaults wired to the app ----------------------------------------------------------
    def _apply_default(self, message: dict) -> str:
        from django.db import close_old_connections

        from trading.account_events import event_apply, parse_event

        close_old_connections()  # a long-lived process: drop a broken or expired connection
        event = parse_event(message, now=clock.now())
        if event is None:
            return "skipped"
        return event_apply(event, broker_name=getattr(self.broker, "name", "tradier"))

    def _reconcile_default(self) -> dict:
        from django.db import close_old_connections

        from trading.reconciliation import reconcile_run

        close_old_connections()
        return reconcile_run(now=clock.now(), broker=self.broker)

    def _confirm_default(self) -> int:
        from django.db import close_old_connections

        from trading.account_events import unconfirmed_sync

        close_old_connections()
        return unconfirmed_sync(broker=self.broker, older_than_sec=self.config.confirm_sec)

    def _heartbeat_default(self, info: dict) -> None:
        from django.db import close_old_connections

        from trading.services import heartbeat_record

        close_old_connections()
        heartbeat_record(name=HEARTBEAT_NAME, now=clock.now(), info=info)

    # --- lifecycle ------------------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping.set()
        if self._ws is not None:
            asyncio.ensure_future(self._ws.close())

    async def run(self) -> None:
        """Until stop(): wait for the lease, stream, reconnect; release everything at the end."""
        attempt = 0
        try:
            while not self.stopping.is_set():
                if not await self._off_loop(self.lease.acquire):
                    await self._sleep(self.config.lease_sec / 3)  # a standby: someone streams
                    continue
                started = time.monotonic()
                try:
                    await self._stream_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every failure means reconnect
                    log.warning("account stream: %s: %s", type(exc).__name__, exc)
                finally:
                    self._set_live(False)
                if self.stopping.is_set():
                    break
                self.stats.drops += 1
                healthy = time.monotonic() - started > self.config.heartbeat_timeout_sec
                attempt = 0 if healthy else attempt + 1
                await self._sleep(
                    backoff_delay(
                        attempt, self.config.backoff_base_sec, self.config.backoff_max_sec
                    )
                )
        finally:
            self._set_live(False)
            await self._off_loop(self.lease.release)
            self._worker.shutdown(wait=True)

    async def _stream_once(self) -> None:
        import websockets

        sid, url = await self._session_get()
        target = self.config.ws_url or url
        async with websockets.connect(target, open_timeout=10, close_timeout=2) as ws:
            self._ws = ws
            heard = self.stats.events + self.stats.heartbeats
            await ws.send(json.dumps({"events": ["order"], "sessionid": sid}))
            self.stats.connects += 1
            self._set_live(True)
            self.connected.set()
            ACCOUNT_STREAM_CONNECTED.set(1)
            renewer = asyncio.ensure_future(self._renew_lease())
            confirmer = asyncio.ensure_future(self._confirm_loop())
            try:
                if self.config.reconcile_on_connect:
                    await self._off_loop(self.reconcile)
                    self.stats.reconciles += 1
                await self._receive(ws, renewer)
            finally:
                renewer.cancel()
                confirmer.cancel()
                if self.stats.events + self.stats.heartbeats == heard:
                    self.session_forget()  # nothing came through: the session may be dead
                self._ws = None
                self.connected.clear()
                ACCOUNT_STREAM_CONNECTED.set(0)

    async def _receive(self, ws, renewer: asyncio.Future) -> None:
        while not self.stopping.is_set():
            if renewer.done():
                raise RuntimeError("account stream lease lost")
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=self.config.heartbeat_timeout_sec)
            except TimeoutError:
                raise TimeoutError(
                    f"no message for {self.config.heartbeat_timeout_sec:.0f}s: reconnecting"
                ) from None
            self.stats.last_message_at = time.monotonic()
            self._set_live(True)
            await self._handle(raw)

    async def _handle(self, raw) -> None:
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            ACCOUNT_STREAM_EVENTS_TOTAL.labels(kind="unknown").inc()
            log.warning("account stream: non-JSON frame skipped: %.120r", raw)
            return
        kind = message.get("event") if isinstance(message, dict) else None
        if kind == "heartbeat":
            self.stats.heartbeats += 1
            ACCOUNT_STREAM_EVENTS_TOTAL.labels(kind="heartbeat").inc()
            await self._off_loop(self.on_heartbeat, {"connects": self.stats.connects})
            return
        if kind != "order":
            ACCOUNT_STREAM_EVENTS_TOTAL.labels(kind="unknown").inc()
            if isinstance(message, dict) and message.get("error"):
                raise RuntimeError(f"Tradier stream error: {message.get('error')}")
            return
        self.stats.events += 1
        try:
            outcome = await self._off_loop(self.apply_event, message)
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop the stream
            ACCOUNT_STREAM_EVENTS_TOTAL.labels(kind="error").inc()
            log.exception("account event %s failed: %s", message.get("id"), exc)
            outcome = "error"
        self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1

    async def _session_get(self) -> tuple[str, str]:
        if self._session and time.monotonic() - self._session[2] < self.config.session_ttl_sec:
            return self._session[0], self._session[1]
        sid, url = await self._off_loop(self.broker.events_session)
        self.stats.sessions += 1
        self._session = (sid, url, time.monotonic())
        return sid, url

    def session_forget(self) -> None:
        """Force a new session at the next connect (e.g. Tradier refused the old one)."""
        self._session = None

    async def _confirm_loop(self) -> None:
        """Read back accepted orders no event has confirmed within `confirm_sec`."""
        while True:
            await asyncio.sleep(max(0.1, self.config.confirm_sec / 2))
            try:
                self.stats.confirmed += await self._off_loop(self.confirm)
            except Exception as exc:  # noqa: BLE001 - retried at the next round
                log.warning("order confirmation sweep failed: %s", exc)

    async def _renew_lease(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_sec / 3)
            if not await self._off_loop(self.lease.renew):
                log.error("account stream lease lost: another process owns it")
                return

    def _set_live(self, live: bool) -> None:
        if self.redis is None:
            return
        key = _key(self.config.account, "live")
        try:
            if live:
                self.redis.set(
                    key, self.lease.token, px=int(self.config.heartbeat_timeout_sec * 1000)
                )
            else:
                self.redis.delete(key)
        except Exception as exc:  # noqa: BLE001 - the flag is advisory
            log.warning("account stream live flag: %s", exc)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=max(0.0, seconds))

    async def _off_loop(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)
