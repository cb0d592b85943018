"""A local Polygon websocket server speaking the real protocol (status arrays, auth, per-symbol
refusals, mixed arrays), with scripted faults, on 127.0.0.1 in a background thread."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

from websockets.asyncio.server import serve


def status(name: str, message: str) -> dict:
    return {"ev": "status", "status": name, "message": message}


@dataclass
class Fault:
    """After `after` frames on connection number `conn` of `cluster`: optionally send a
    status (slow_consumer, force_disconnect), drop the connection abruptly, and resume the
    next connection `rewind` frames earlier (the server resends: duplicates)."""

    cluster: str
    conn: int
    after: int
    status: str | None = None
    rewind: int = 0


@dataclass
class FakePolygonServer:
    key: str = "good-key"
    frames: dict[str, list] = field(default_factory=dict)  # cluster → frames (list or raw str)
    not_entitled: set[str] = field(default_factory=set)  # tickers, e.g. {"I:NDX"}
    faults: list[Fault] = field(default_factory=list)
    max_connections_first: bool = False
    pauses: dict[int, float] = field(default_factory=dict)  # frame index → seconds before it

    def __post_init__(self) -> None:
        self.connections: dict[str, int] = {}
        self.auth_attempts = 0
        self.cursor: dict[str, int] = {}
        self.done: dict[str, bool] = {}
        self.subscriptions: list[str] = []
        self.unsubscribed: list[str] = []
        self.reader_errors: list[str] = []
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/options"

    def start(self) -> FakePolygonServer:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "fake polygon server did not start"
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def all_done(self, clusters) -> bool:
        return all(self.done.get(c) for c in clusters)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws) -> None:
        cluster = ws.request.path.strip("/")
        conn = self.connections[cluster] = self.connections.get(cluster, 0) + 1
        await ws.send(json.dumps([status("connected", "Connected Successfully")]))
        auth = json.loads(await ws.recv())
        self.auth_attempts += 1
        if auth.get("action") != "auth" or auth.get("params") != self.key:
            await ws.send(json.dumps([status("auth_failed", "authentication failed")]))
            await ws.close()
            return
        await ws.send(json.dumps([status("auth_success", "authenticated")]))
        if self.max_connections_first and conn == 1:
            await ws.send(
                json.dumps([status("max_connections", "Maximum number of connections exceeded.")])
            )
            await ws.close()
            return
        sub = json.loads(await ws.recv())
        params = [p for p in sub.get("params", "").split(",") if p]
        self.subscriptions.append((cluster, sub.get("params", "")))
        answers, subscribed = [], set()
        for param in params:
            ticker = param.split(".", 1)[1]
            if ticker in self.not_entitled:
                answers.append(status("error", f"NOT_ENTITLED: not entitled to {param}"))
            else:
                subscribed.add(ticker)
                answers.append(status("success", f"subscribed to: {param}"))
        await ws.send(json.dumps(answers))
        reader = asyncio.ensure_future(self._read_rest(ws))
        frames = self.frames.get(cluster, [])
        sent = 0
        try:
            while self.cursor.get(cluster, 0) < len(frames):
                position = self.cursor.get(cluster, 0)
                if position in self.pauses:
                    await asyncio.sleep(self.pauses[position])  # a quiet market
                frame = frames[position]
                if isinstance(frame, str):
                    await ws.send(frame)
                else:
                    await ws.send(
                        json.dumps(
                            [
                                e
                                for e in frame
                                if e.get("ev") == "status" or e.get("sym") in subscribed
                            ]
                        )
                    )
                self.cursor[cluster] = position + 1
                sent += 1
                await asyncio.sleep(0)
                for fault in self.faults:
                    if (fault.cluster, fault.conn, fault.after) == (cluster, conn, sent):
                        if fault.status:
                            await ws.send(json.dumps([status(fault.status, "server says so")]))
                        self.cursor[cluster] = max(0, position + 1 - fault.rewind)
                        ws.transport.abort()  # abrupt: no close frame
                        return
            self.done[cluster] = True
            await ws.wait_closed()
        finally:
            reader.cancel()

    async def _read_rest(self, ws) -> None:
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("action") == "unsubscribe":
                    self.unsubscribed.append(msg["params"])
        except Exception as exc:  # the connection ended
            self.reader_errors.append(repr(exc))
