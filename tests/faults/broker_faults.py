"""Scenario: signal → risk → order flows through the real TradierBroker against the fake
Tradier HTTP server failing 30% of requests (429, 5xx before/after acting, timeouts before/after
acting, answer-then-drop). Between flows the exit tick syncs orders and places protective
stops (through the same faults). Then the faults stop, reconciliation runs, and the broker's
book is compared with the ledger: lost orders, doubled orders, state and position mismatches,
and whether every failure shows in `autotrader_tradier_request_total`.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.test import override_settings

from tests.faults.fake_tradier import ALL_FAULTS, FakeTradier

NOW = datetime(2025, 9, 19, 15, 0, tzinfo=UTC)  # 11:00 ET, a regular session
SYMBOLS = ["SPY", "QQQ", "IWM", "DIA"]
FAILURE_STATUSES = {"429", "500", "502", "503", "504", "timeout", "error"}
# Tradier status → the ledger statuses that agree with it.
AGREES = {
    "filled": {"filled"},
    "open": {"open", "submitted", "partially_filled"},
    "pending": {"submitted", "open"},
    "partially_filled": {"partially_filled"},
    "canceled": {"cancelled"},
    "expired": {"expired"},
    "rejected": {"rejected"},
}


def tradier_failures() -> Counter:
    """autotrader_tradier_request_total by status, failures only."""
    from autotrader_site.metrics import TRADIER_REQUEST_TOTAL

    out: Counter = Counter()
    for metric in TRADIER_REQUEST_TOTAL.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("status") in FAILURE_STATUSES:
                out[sample.labels["status"]] += int(sample.value)
    return out


@contextmanager
def quiet(*names: str):
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


SWEEP_EVERY = 10  # flows between two dips of the market through the stops


def _fast_sleep(seconds: float) -> None:
    time.sleep(min(seconds, 0.02))  # keep the backoff's shape, not its wall time


def tradier_settings(base_url: str, **extra):
    return override_settings(
        DRY_RUN=False,
        TRADIER_BASE_URL=base_url,
        TRADIER_ACCESS_TOKEN="fake-token",
        TRADIER_ACCOUNT_ID="VA00000000",
        TRADIER_TIMEOUT_SEC=0.15,
        TRADIER_MAX_RETRIES=4,
        # the fake books a late landing 0.25 s after arrival (0.1 s after the client gave up):
        # a 1 s settle window covers it without slowing every faulted flow by the default 3 s
        TRADIER_SUBMIT_SETTLE_SEC=1.0,
        **extra,
    )


def loose_config(*, bracket: bool):
    """Every flow trades: no count, cash, exposure, idea or daily-loss limit stands in the way
    (the scenario tests the broker's faults, not the risk rules; with the defaults 996 of
    1,000 flows were blocked, mostly as DUPLICATE_EXPOSURE of the same setup on 4 symbols)."""
    from risk.config import RiskConfig

    return RiskConfig.from_settings().with_(
        max_concurrent=1_000_000,
        max_open_orders=1_000_000,
        max_positions_per_symbol=0,
        max_daily_loss_usd=Decimal("0"),
        max_daily_loss_r=Decimal("0"),
        max_order_notional_usd=Decimal("0"),
        max_order_notional_pct=Decimal("0"),
        max_symbol_exposure_pct=Decimal("0"),
        max_gross_exposure_pct=Decimal("0"),
        duplicate_exposure=False,
        min_cash_usd=Decimal("0"),
        stop_pct=Decimal("0.01") if bracket else None,
        tp_pct=Decimal("0.02") if bracket else None,
    )


def signal_make(n: int, rng: random.Random):
    from strategies.models import Signal

    symbol = rng.choice(SYMBOLS)
    return Signal.objects.create(
        setup="EMA_CROSS",
        symbol=symbol,
        execution_symbol=symbol,
        bar_ts=datetime(2025, 1, 2, tzinfo=UTC) + timedelta(minutes=n),
        entry_price=Decimal("100"),
        stop_price=Decimal("99"),
        target_one=Decimal("101"),
        target_two=Decimal("102"),
    )


def book_compare(fake: FakeTradier) -> dict:
    """The broker's book against the ledger (after reconciliation)."""
    from trading.models import Order, OrderRole, Position

    remote = dict(fake.state.orders)
    ours = {o.broker_order_id: o for o in Order.objects.exclude(broker_order_id="")}
    lost = []  # placed at the broker, but the ledger lost the order it created for it
    mismatched = []
    unlinked_legs = []
    for oid, record in remote.items():
        order = ours.get(str(oid))
        if order is None or order.role == OrderRole.EXTERNAL:
            lost.append(record.get("tag", oid))
            continue
        legs = record.get("leg") or []
        status = legs[0]["status"] if legs else record["status"]  # an OTOCO row is its entry
        if order.status not in AGREES.get(status, {status}):
            mismatched.append(f"{order.tag}: broker {status} ledger {order.status}")
        for leg in legs[1:]:
            child = ours.get(str(leg["id"]))
            if child is None:
                unlinked_legs.append(f"{order.tag} leg {leg['id']} {leg['type']} {leg['status']}")
            elif child.status not in AGREES.get(leg["status"], {leg["status"]}):
                mismatched.append(f"{child.tag}: broker {leg['status']} ledger {child.status}")
    protection = Counter()  # working broker-side stops per trade tag
    for record in remote.values():
        tag = str(record.get("tag") or "")
        for leg in record.get("leg") or [record]:
            if leg["type"] == "stop" and leg["status"] in ("open", "pending"):
                protection[tag.removesuffix("-entry").split("-stop")[0]] += 1
    unknown = list(
        Order.objects.filter(broker="tradier", broker_order_id="")
        .exclude(status__in=["rejected", "cancelled", "expired"])
        .values_list("tag", flat=True)
    )
    doubled = sum(n - 1 for n in fake.state.accepted_by_tag().values() if n > 1)
    broker_pos = fake.state.positions()
    ledger_pos = {p.symbol: p.qty for p in Position.objects.exclude(qty=0)}
    position_mismatch = sorted(
        s for s in set(broker_pos) | set(ledger_pos) if broker_pos.get(s, 0) != ledger_pos.get(s, 0)
    )
    return {
        "broker_orders": len(remote),
        "lost_orders": len(lost),
        "lost_examples": lost[:3],
        "unsettled_orders": len(unknown),
        "unsettled_examples": unknown[:3],
        "doubled_orders": doubled,
        "state_mismatches": len(mismatched),
        "mismatch_examples": mismatched[:3],
        "position_mismatches": len(position_mismatch),
        "unlinked_bracket_legs": len(unlinked_legs),
        "unlinked_examples": unlinked_legs[:3],
        "trades_with_two_stops": sum(1 for n in protection.values() if n > 1),
    }


def run_broker_faults(
    *,
    flows: int,
    fault_rate: float = 0.3,
    seed: int = 1,
    kinds: tuple[str, ...] = ALL_FAULTS,
    late_landing_sec: float = 0.0,
) -> dict:
    """Needs a migrated database (in-process; the fake runs in a thread). `late_landing_sec`
    > 0 adds the late landing to the faults: an order POST that times out at the client and
    reaches the book that long after it arrived — after the client's first tag look-up."""
    from trading.brokers import broker_override
    from trading.brokers.tradier import TradierBroker
    from trading.models import Order
    from trading.pipeline import exits_tick_run, signal_handle
    from trading.reconciliation import reconcile_run

    rng = random.Random(seed)
    outcomes: Counter = Counter()
    errors: list[str] = []
    resting_fills = 0
    started = time.monotonic()
    with (
        FakeTradier(
            fault_rate=0.0,
            delay_sec=0.35,
            seed=seed,
            fault_kinds=kinds,
            late_landing_sec=late_landing_sec,
            cash=Decimal(10**9),  # buying power for every flow
            buying_power=Decimal(10**9),
        ) as fake,
        tradier_settings(fake.base_url),
        quiet("trading", "marketdata", "risk", "strategies", "httpx"),
    ):
        broker = TradierBroker.from_settings(backoff_sec=0.01, http_kwargs={"sleep": _fast_sleep})
        broker_override(broker)
        failures_before = tradier_failures()
        try:
            fake.state.fault_rate = fault_rate
            for n in range(flows):
                now = NOW + timedelta(seconds=5 * n)  # limits time out, get replaced by market
                signal = signal_make(n, rng)
                config = loose_config(bracket=n % 2 == 1)
                try:
                    outcomes[signal_handle(signal=signal, now=now, config=config)] += 1
                except Exception as exc:  # a crash of the flow is a figure
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                if n % 3 == 2:
                    try:
                        exits_tick_run(now=now, config=config)
                    except Exception as exc:
                        errors.append(f"exits_tick: {type(exc).__name__}: {exc}"[:200])
                if n % SWEEP_EVERY == SWEEP_EVERY - 1:
                    # the market dips through the stops and comes back: resting stops fill
                    # (brackets cancel their targets), so the book stays the size of a day's
                    # and every exit tick does not re-sync every order ever placed
                    for symbol in SYMBOLS:
                        resting_fills += fake.state.move_price(symbol, Decimal("98.50"))
                    try:
                        exits_tick_run(now=now, config=config)
                    except Exception as exc:
                        errors.append(f"exits_tick: {type(exc).__name__}: {exc}"[:200])
                    for symbol in SYMBOLS:
                        fake.state.move_price(symbol, Decimal("100.00"))
            end = NOW + timedelta(seconds=5 * flows)
            injected = sum(fake.state.faults.values())
            failures = tradier_failures() - failures_before
            fake.state.fault_rate = 0.0
            settle = loose_config(bracket=False)
            # the faults are over: the settling reconciliation reads the whole book (1,400
            # orders at 1,000 flows) with a client timeout meant for it, not the 0.15 s that
            # makes the faults bite (it timed out listing them under load and settled nothing)
            with override_settings(TRADIER_TIMEOUT_SEC=10):
                settler = TradierBroker.from_settings()
            broker_override(settler)
            reconciled = [reconcile_run(now=end + timedelta(minutes=1), broker=settler)]
            exits_tick_run(now=end + timedelta(minutes=1), config=settle)
            reconciled.append(reconcile_run(now=end + timedelta(minutes=2), broker=settler))
            settler.http.close()
        finally:
            broker_override(None)
            broker.http.close()
        figures = book_compare(fake)
    requests = sum(fake.state.requests.values())
    return {
        "flows": flows,
        "fault_rate": fault_rate,
        "requests": requests,
        "faults_injected": injected,
        "faults_by_kind": dict(fake.state.faults),
        "late_landings": fake.state.late_landings,
        "resting_fills": resting_fills,  # stops (and bracket legs) filled by the market dips
        "failures_in_metrics": sum(failures.values()),
        "failures_by_status": dict(failures),
        "outcomes": dict(outcomes),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "ledger_orders": Order.objects.count(),
        "reconcile_ok": all(r["ok"] for r in reconciled),
        "reconcile_error": "; ".join(r["error"] for r in reconciled if r.get("error"))[:300],
        **figures,
        "seconds": round(time.monotonic() - started, 1),
    }
