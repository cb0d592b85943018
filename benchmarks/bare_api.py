"""The bare reference for benchmarks/bench_api.py: a plain ASGI app that answers
`GET /api/v1/signals?limit=100` by running the very SQL statements Django runs for that request
(recorded by bench_api.py as a JSON list in BARE_SQL_FILE: the token lookup, then the page) on a
psycopg pool, and encodes the page with orjson like the lean serialiser. No framework: what is
left is the database, the encoder and the ASGI server, so Django's share is what it costs above.

    BARE_DSN=postgresql://... BARE_SQL_FILE=... uvicorn benchmarks.bare_api:app --workers 2
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC

import orjson
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

LIMIT = 100
_DECIMALS = ("entry_price", "stop_price", "target_one", "target_two")
_RAW_JSON = ("reasons", "checks", "features")
_pool: AsyncConnectionPool | None = None
_statements: list[str] = []


def _iso(value):
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _row(row: dict) -> dict:
    for name in _RAW_JSON:
        row[name] = orjson.Fragment(row.pop(f"{name}__raw"))
    for name in _DECIMALS:
        if row[name] is not None:
            row[name] = f"{row[name]:.4f}"
    row["bar_ts"] = _iso(row["bar_ts"])
    row["created_at"] = _iso(row["created_at"])
    row["score"] = float(row["score"])
    return row


async def _page() -> bytes:
    async with _pool.connection() as conn:
        for sql in _statements[:-1]:  # authentication and whatever Django runs before the page
            await (await conn.execute(sql)).fetchall()
        cursor = conn.cursor(row_factory=dict_row)
        rows = await (await cursor.execute(_statements[-1])).fetchall()
    page = [_row(r) for r in rows[:LIMIT]]
    following = None
    if len(rows) > LIMIT and page:
        key = {"k": [page[-1]["bar_ts"], page[-1]["id"]]}
        cursor_text = base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")
        following = f"/api/v1/signals?limit={LIMIT}&cursor={cursor_text}"
    return orjson.dumps({"next": following, "previous": None, "results": page})


async def app(scope, receive, send):
    global _pool, _statements
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                with open(os.environ["BARE_SQL_FILE"]) as handle:
                    _statements = json.load(handle)
                _pool = AsyncConnectionPool(
                    os.environ["BARE_DSN"], min_size=1, max_size=8, open=False
                )
                await _pool.open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    if not headers.get(b"authorization", b"").startswith(b"Token "):
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = await _page()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
