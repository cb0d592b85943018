"""Scenario: 8 decider processes (each its own PostgreSQL connection) take bursts of signals
through the real decision path (`trading.pipeline.signal_handle`: decision lock → exposure →
risk rules → trade and entry order → paper broker) at the same instant; after every burst the
ledger is checked against the limits.

Each burst starts from a random, legal book (open trades, working orders, today's realised
loss) so that every limit is sometimes the binding one. A trial is one signal decision.
Breaches: live trades above RISK_MAX_CONCURRENT, working entry orders above
RISK_MAX_OPEN_ORDERS, live trades in one symbol above RISK_MAX_POSITIONS_PER_SYMBOL, and any
approval while today's loss is at or beyond RISK_MAX_DAILY_LOSS_USD.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

NOW = datetime(2025, 9, 19, 15, 0, tzinfo=UTC)  # 11:00 ET on a regular Friday session
SYMBOLS = ["SPY", "QQQ", "IWM", "DIA"]
LIMITS = {
    "RISK_MAX_CONCURRENT": 3,
    "RISK_MAX_OPEN_ORDERS": 5,
    "RISK_MAX_POSITIONS_PER_SYMBOL": 1,
    "RISK_MAX_DAILY_LOSS_USD": 500,
}


def _decider(index: int, barrier, inbox, outbox, journal: str) -> None:
    """One decider process (forked with closed connections, so it opens its own): wait for a
    burst, decide its signals through the real path, report, repeat."""
    from pathlib import Path

    from django.conf import settings

    import trading.brokers as brokers
    from risk.config import RiskConfig
    from strategies.models import Signal
    from trading.pipeline import signal_handle

    settings.DRY_RUN = True
    settings.EVENTS_JOURNAL = Path(journal)
    if os.environ.get("FAULTS_CONTROL_NO_LOCK") == "1":  # control run: proves the check bites
        from django.db import transaction

        import trading.pipeline

        trading.pipeline.decision_lock = lambda **kw: transaction.atomic()
    brokers._default = None
    config = RiskConfig.from_settings().with_(
        max_concurrent=LIMITS["RISK_MAX_CONCURRENT"],
        max_open_orders=LIMITS["RISK_MAX_OPEN_ORDERS"],
        max_positions_per_symbol=LIMITS["RISK_MAX_POSITIONS_PER_SYMBOL"],
        max_daily_loss_usd=Decimal(LIMITS["RISK_MAX_DAILY_LOSS_USD"]),
        max_order_notional_usd=Decimal("0"),
        min_cash_usd=Decimal("0"),
        stop_pct=None,
        tp_pct=None,
    )
    while True:
        barrier.wait()
        ids = inbox.get()
        if ids is None:
            return
        outcomes = []
        for pk in ids:
            signal = Signal.objects.get(pk=pk)
            try:
                outcomes.append(signal_handle(signal=signal, now=NOW, config=config))
            except Exception as exc:  # an error is a figure
                outcomes.append(f"error:{type(exc).__name__}:{exc}"[:200])
        outbox.put((index, outcomes))
        barrier.wait()


def _book_reset(rng: random.Random, burst: int) -> dict:
    """A random legal starting book; returns what it holds."""
    from django.db import transaction

    from risk.models import TradingState
    from strategies.models import Signal
    from trading.models import Fill, Order, OrderEvent, Position, Trade

    with transaction.atomic():
        OrderEvent.objects.all().delete()
        Fill.objects.all().delete()
        Order.objects.all().delete()
        Trade.objects.all().delete()
        Position.objects.all().delete()
        Signal.objects.all().delete()
        TradingState.objects.update(state="ACTIVE", reason="")
        live = rng.randint(0, LIMITS["RISK_MAX_CONCURRENT"])
        symbols = rng.sample(SYMBOLS, k=min(live, len(SYMBOLS)))
        for n, symbol in enumerate(symbols):
            trade = Trade.objects.create(
                symbol=symbol,
                execution_symbol=symbol,
                qty=10,
                remaining_qty=10,
                entry_price=Decimal("100"),
                stop_price=Decimal("99"),
                initial_stop_price=Decimal("99"),
                status="open",
                opened_at=NOW - timedelta(minutes=5),
                created_at=NOW - timedelta(minutes=5),
            )
            Order.objects.create(
                tag=f"pre-{burst}-stop-{n}",
                symbol=symbol,
                side="sell",
                qty=10,
                order_type="stop",
                stop_price=Decimal("99"),
                role="stop",
                status="open",
                trade=trade,
                created_at=NOW - timedelta(minutes=5),
            )
        manual = rng.randint(0, LIMITS["RISK_MAX_OPEN_ORDERS"])
        for n in range(manual):
            Order.objects.create(
                tag=f"pre-{burst}-manual-{n}",
                symbol=rng.choice(SYMBOLS),
                side="buy",
                qty=1,
                order_type="limit",
                price=Decimal("50"),
                role="manual",
                status="open",
                created_at=NOW - timedelta(minutes=3),
            )
        limit = LIMITS["RISK_MAX_DAILY_LOSS_USD"]
        roll = rng.random()  # a quarter of the books are at or beyond the daily loss limit
        loss = Decimal(
            0
            if roll < 0.5
            else rng.randint(1, limit - 1)
            if roll < 0.75
            else rng.choice([limit, rng.randint(limit, 2 * limit)])
        )
        if loss:
            Trade.objects.create(
                symbol="SPY",
                execution_symbol="SPY",
                qty=1,
                remaining_qty=0,
                entry_price=Decimal("100"),
                stop_price=Decimal("99"),
                initial_stop_price=Decimal("99"),
                status="closed",
                realized_pnl=-loss,
                opened_at=NOW - timedelta(hours=1),
                closed_at=NOW - timedelta(minutes=30),
                created_at=NOW - timedelta(hours=1),
            )
    return {"live": len(symbols), "manual": manual, "loss": loss}


def _signals_create(count: int, burst: int, rng: random.Random) -> list[int]:
    from strategies.models import Signal

    base = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=burst * 100)
    rows = []
    for n in range(count):
        symbol = rng.choice(SYMBOLS)
        rows.append(
            Signal(
                setup="EMA_CROSS",
                symbol=symbol,
                execution_symbol=symbol,
                bar_ts=base + timedelta(minutes=n),
                entry_price=Decimal("100"),
                stop_price=Decimal("99"),
                target_one=Decimal("101"),
                target_two=Decimal("102"),
            )
        )
    return [s.pk for s in Signal.objects.bulk_create(rows)]


def _breaches(book: dict) -> dict[str, int]:
    from django.db.models import Count

    from trading.models import Order, Trade
    from trading.selectors import LIVE_TRADE_STATUSES, PROTECTIVE_ROLES, working_orders

    live = Trade.objects.filter(status__in=LIVE_TRADE_STATUSES)
    per_symbol = live.values("execution_symbol").annotate(n=Count("id"))
    entries = working_orders().exclude(role__in=PROTECTIVE_ROLES).count()
    new_entries = Order.objects.filter(role="entry").count()
    limit_pos = LIMITS["RISK_MAX_POSITIONS_PER_SYMBOL"]
    return {
        "max_concurrent": max(0, live.count() - LIMITS["RISK_MAX_CONCURRENT"]),
        "max_open_orders": max(0, entries - LIMITS["RISK_MAX_OPEN_ORDERS"]),
        "per_symbol": sum(max(0, row["n"] - limit_pos) for row in per_symbol),
        "daily_loss": new_entries if book["loss"] >= LIMITS["RISK_MAX_DAILY_LOSS_USD"] else 0,
    }


def run_concurrency(*, bursts: int, deciders: int = 8, per_decider: int = 2, seed: int = 1) -> dict:
    """Needs a migrated PostgreSQL database whose writes other processes can see."""
    from django.db import connections

    from risk.models import TradingState

    TradingState.objects.get_or_create(account="default")
    journal = os.path.join(tempfile.mkdtemp(prefix="faults-journal-"), "events.jsonl")
    connections.close_all()  # children must not share the parent's socket
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(deciders + 1)
    inboxes = [ctx.Queue() for _ in range(deciders)]
    outbox = ctx.Queue()
    procs = [
        ctx.Process(target=_decider, args=(i, barrier, inboxes[i], outbox, journal), daemon=True)
        for i in range(deciders)
    ]
    for p in procs:
        p.start()
    rng = random.Random(seed)
    totals = {"max_concurrent": 0, "max_open_orders": 0, "per_symbol": 0, "daily_loss": 0}
    outcomes: dict[str, int] = {}
    errors: list[str] = []
    binding = {"loss_halted_bursts": 0, "approved": 0}
    started = time.monotonic()
    durations: list[float] = []
    try:
        for burst in range(bursts):
            book = _book_reset(rng, burst)
            ids = _signals_create(deciders * per_decider, burst, rng)
            for i in range(deciders):
                inboxes[i].put(ids[i * per_decider : (i + 1) * per_decider])
            t0 = time.monotonic()
            barrier.wait(timeout=120)  # go
            for _ in range(deciders):
                _, got = outbox.get(timeout=120)
                for outcome in got:
                    key = outcome.split(":", 1)[0]
                    outcomes[key] = outcomes.get(key, 0) + 1
                    if key == "error":
                        errors.append(outcome)
            barrier.wait(timeout=120)  # all done
            durations.append(time.monotonic() - t0)
            for name, n in _breaches(book).items():
                totals[name] += n
            if book["loss"] >= LIMITS["RISK_MAX_DAILY_LOSS_USD"]:
                binding["loss_halted_bursts"] += 1
        for box in inboxes:
            box.put(None)
        barrier.wait(timeout=120)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    approved = outcomes.get("dry_run", 0) + outcomes.get("submitted", 0)
    return {
        "deciders": deciders,
        "bursts": bursts,
        "trials": bursts * deciders * per_decider,
        "approved": approved,
        "risk_blocked": outcomes.get("risk_blocked", 0),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "breaches": totals,
        "breaches_total": sum(totals.values()),
        "loss_limit_bursts": binding["loss_halted_bursts"],
        "seconds": round(time.monotonic() - started, 1),
        "burst_seconds_max": round(max(durations, default=0), 2),
        "burst_seconds_median": round(sorted(durations)[len(durations) // 2], 2)
        if durations
        else 0,
    }
