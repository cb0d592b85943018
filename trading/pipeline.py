"""The live/replay path for one closed bar: `trading.core.step.bar_step` over the ORM ledger.

1. paper fills: working paper orders of the bar's symbol fill on this bar (they were decided
   at an earlier bar's close); pegged entry limits that timed out become market orders;
2. the strategy engine evaluates the stored bar (`strategies.services.evaluate_bar`);
3. the exit manager runs for trades in the bar's symbol, then the daily-loss kill switch;
4. each generated signal: under the decision lock, exposure -> risk rules -> trade + entry order
   rows; after the lock the entry goes to the broker; the Signal row gets its outcome
   (risk_blocked / approved -> dry_run (paper) or submitted (live broker accepted) / failed).

Routing: a signal trades on the book the strategy stage gave it (`Signal.book`). The account's
signals go to the configured broker; with DRY_RUN=0 the signals of setups in paper mode go to the
paper book (`trading.paper_book`): a second pass of the same `bar_step` over the paper book's
ledger and paper broker (its fills, exits, kill switch and decisions), never the account's.
"""

from __future__ import annotations

import logging
import time as wall
from dataclasses import replace
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import InterfaceError, OperationalError

from autotrader_site.metrics import BAR_TO_DECISION_SECONDS
from marketdata.types import BarData
from risk.config import RiskConfig
from risk.selectors import symbol_params_get
from risk.services import decision_lock
from strategies.models import Book, ClaimState
from trading.account_stream import stream_is_live
from trading.brokers import broker_get
from trading.core import lifecycle
from trading.core.fills import BarPrices
from trading.core.step import StepContext, bar_step, clock_step, symbol_model
from trading.core.types import Candidate
from trading.exits import ema_crossed_down, flat_time
from trading.orm_ledger import OrmLedger
from trading.paper_book import book_of, paper_book_active, paper_book_broker
from trading.selectors import exposure_snapshot, working_orders
from trading.services.entry_resume import entries_resume
from trading.services.orders import order_sync

log = logging.getLogger(__name__)

# errors of a database connection that died (kill, restart): retried, never a signal's outcome
DATABASE_GONE = (OperationalError, InterfaceError)
BAR = timedelta(minutes=1)


def _strategies():
    from strategies import services as strategy_services

    return strategy_services


def signal_outcome_set(*, signal, outcome: str, checks=None, qty=None):
    """Annotate the journal row through the strategy app (it counts the metric and appends to
    events.jsonl)."""
    return _strategies().signal_outcome_set(signal=signal, outcome=outcome, checks=checks, qty=qty)


def _ledger(broker=None, book: str = Book.ACCOUNT) -> OrmLedger:
    """The ORM ledger of `book` with this module's decision lock and exposure reader (looked up
    at call time, so a test or fault scenario that replaces them here is obeyed)."""
    return OrmLedger(
        broker,
        book=book,
        lock=lambda: decision_lock(),
        exposure_read=lambda **kw: exposure_snapshot(**kw),
    )


def _costs(broker):
    return broker.costs if broker.name == "paper" else None


def paper_bar_process(*, bar: BarData, config: RiskConfig, broker=None) -> int:
    """Fill working paper orders of `bar.symbol` on this bar (`lifecycle.fills_on_bar`).
    Returns the number of fills."""
    broker = broker or broker_get()
    if broker.name != "paper":
        return 0
    params = symbol_params_get(symbol=bar.symbol, config=config)
    return lifecycle.fills_on_bar(
        _ledger(broker),
        symbol=bar.symbol,
        bar=BarPrices.of(bar),
        ts=bar.ts,
        costs=broker.costs.for_model(symbol_model(config, params)),
        limit_timeout=timedelta(seconds=config.entry_limit_timeout_sec),
    )


def _policy_window(signal) -> tuple[time, time] | None:
    window = (signal.features or {}).get("policy_window")
    if not window:
        return None
    try:
        start, end = (time.fromisoformat(str(v)) for v in window)
    except (TypeError, ValueError):
        log.warning("signal %s: bad policy_window %r ignored", signal.pk, window)
        return None
    return start, end


def _policy_limit(signal):
    """(bar_ts start, bar_ts end, max_trades) of the session policy the signal was planned
    under, for the re-count inside the decision lock; None without a max_trades policy."""
    if not settings.SESSION_POLICY_FILE:
        return None
    from strategies import policies
    from strategies.features.sessions import bar_close_et

    book = policies.policy_book()
    if book is None:
        return None
    close_at = bar_close_et(signal.bar_ts)
    policy = book.active(close_at)
    if policy is None or policy.max_trades is None:
        return None
    start, end = policies.bar_ts_window(book, policy, close_at.astimezone(book.timezone).date())
    return start, end, policy.max_trades


def candidate_of(signal) -> Candidate:
    """A stored Signal row as the lifecycle's candidate (levels on the execution symbol)."""
    features = signal.features or {}
    return Candidate(
        setup=signal.setup,
        symbol=signal.symbol,
        execution_symbol=signal.execution_symbol,
        bar_ts=signal.bar_ts,
        entry=None if signal.entry_price is None else Decimal(signal.entry_price),
        stop=signal.stop_price,
        target_one=signal.target_one,
        target_two=signal.target_two,
        time_stop_sec=features.get("time_stop_sec"),
        policy_window=_policy_window(signal),
        policy_limit=_policy_limit(signal),
        ref=signal,
    )


def signal_handle(*, signal, now: datetime, config: RiskConfig, broker=None) -> str:
    """Risk-check one generated signal and, if approved, open its trade and send the entry
    (`lifecycle.signal_decide`). A signal already `approved` is the retry of an attempt that
    may have died before sending its entry: that entry is resumed
    (`trading.services.entry_resume`). Returns the signal's final outcome."""
    if signal.outcome == "approved":
        entries_resume(now=now, broker=broker, signal_ids=[signal.pk])
        signal.refresh_from_db(fields=["outcome"])
    if signal.outcome != "generated":
        return signal.outcome
    params = symbol_params_get(symbol=signal.execution_symbol, config=config)
    if book_of(signal) == Book.PAPER:
        ledger = _ledger(paper_book_broker(), book=Book.PAPER)  # never the account's broker
    else:
        ledger = _ledger(broker)
    return lifecycle.signal_decide(
        ledger, candidate_of(signal), now=now, config=config, params=params
    )


def kill_switch_check(*, now: datetime, config: RiskConfig) -> bool:
    """Daily loss limit: when today's P&L reaches -RISK_MAX_DAILY_LOSS_USD, HALT and flatten.
    Returns True when it fired now."""
    return lifecycle.kill_switch(_ledger(), now=now, config=config)


def signals_undecided(*, symbol: str, bar_ts: datetime) -> list:
    """The bar's signals an interrupted attempt left undecided (claim-and-resume: the bar is
    claimed — evaluated, its signals stored — but the task died before deciding them)."""
    from strategies.models import Signal

    return list(Signal.objects.filter(symbol=symbol, bar_ts=bar_ts, outcome="generated"))


def _signal_failed(candidate: Candidate, exc: Exception) -> None:
    """A signal that crashed in risk/trading is marked failed (never left generated) — except
    when the database went away under it: that is not the signal's fault, the task retries
    (trading.tasks.BAR_CLOSE_RETRY) and the retry decides it."""
    if isinstance(exc, DATABASE_GONE):
        raise exc
    signal = candidate.ref
    log.error("signal %s failed in risk/trading", signal.pk, exc_info=exc)
    try:
        signal.refresh_from_db()
        if signal.outcome in ("generated", "approved"):
            signal_outcome_set(
                signal=signal,
                outcome="failed",
                checks=[
                    {
                        "stage": "trading",
                        "code": "ERROR",
                        "passed": False,
                        "message": "internal error; see logs",
                    }
                ],
            )
    except Exception:
        log.exception("could not mark signal %s failed", signal.pk)


def process_bar_close(
    *, bar: BarData, config: RiskConfig | None = None, row: dict | None = None
) -> list:
    """Everything one closed bar triggers (`trading.core.step.bar_step`); returns the Signals
    handled. `row`: the bar's feature row, when a batch computed it (`trading.bar_batch`).

    The bar's claim (its FeatureSnapshot) ends `done`: inserted so when nothing fires and
    nothing of the symbol is working or open (the step has nothing left to do), else marked
    once the step ran to its end."""
    started = wall.perf_counter()
    config = config or RiskConfig.from_settings()
    now = bar.ts + BAR
    broker = broker_get()
    ledger = _ledger(broker)
    signals: list = []
    paper: list[Candidate] = []  # the paper book's candidates, decided in its own pass
    retried: list[bool] = []
    claimed: list[str | None] = []

    def strategy() -> list[Candidate]:
        # the symbol's live state is read once per bar anyway (cached in the ledger)
        idle = not paper_book_active() and ledger.is_idle(bar.symbol)
        evaluation = _strategies().bar_evaluate(
            symbol=bar.symbol,
            bar_ts=bar.ts,
            now=now,
            row=row,
            quiet_state=ClaimState.DONE if idle else ClaimState.CLAIMED,
        )
        claimed.append(evaluation.claimed)
        signals.extend(evaluation.signals)
        if evaluation.evaluated_before:  # an earlier attempt that did not finish: resume it
            retried.append(True)
            signals.extend(signals_undecided(symbol=bar.symbol, bar_ts=bar.ts))
        generated = [s for s in signals if s.outcome == "generated"]
        paper.extend(candidate_of(s) for s in generated if book_of(s) == Book.PAPER)
        return [candidate_of(s) for s in generated if book_of(s) != Book.PAPER]

    ctx = StepContext(
        config=config,
        params=_params_cache(config),
        flat_at=lambda at: flat_time(at, settings.FLATTEN_BEFORE_CLOSE_MIN),
        costs=_costs(broker),
        cross_down=lambda symbol: ema_crossed_down(symbol, bar.ts),
        escalate_by_clock=broker.name != "paper",
        on_error=_signal_failed,
        on_decided=lambda c, o: BAR_TO_DECISION_SECONDS.observe(wall.perf_counter() - started),
    )
    prices = BarPrices.of(bar)
    bar_step(ledger, symbol=bar.symbol, ts=bar.ts, bar=prices, strategy=strategy, ctx=ctx)
    if paper or paper_book_active():
        # the paper book: the same step over its own ledger, fills from this bar
        book_broker = paper_book_broker()
        bar_step(
            _ledger(book_broker, book=Book.PAPER),
            symbol=bar.symbol,
            ts=bar.ts,
            bar=prices,
            strategy=lambda: paper,
            ctx=replace(ctx, costs=book_broker.costs, escalate_by_clock=False),
        )
    if retried:  # and the entries it approved but did not live to send
        entries_resume(now=now, broker=broker, signal_ids=_bar_signal_ids(bar))
    if retried or ClaimState.CLAIMED in claimed:
        _strategies().claims_done(symbol=bar.symbol, bar_ts=bar.ts)
    if settings.DEBUG:
        log.debug("bar %s %s handled %d signals", bar.symbol, bar.ts, len(signals))
    return signals


def _bar_signal_ids(bar: BarData) -> list[int]:
    from strategies.models import Signal

    return list(
        Signal.objects.filter(symbol=bar.symbol, bar_ts=bar.ts, outcome="approved").values_list(
            "pk", flat=True
        )
    )


def _params_cache(config: RiskConfig):
    """Per-symbol risk values (and cost model), read once per step."""
    cache: dict = {}

    def params(symbol: str):
        if symbol not in cache:
            cache[symbol] = symbol_params_get(symbol=symbol, config=config)
        return cache[symbol]

    return params


def scan_latest(*, now: datetime) -> int:
    """Beat safety net: run the pipeline on the stored bars of each configured symbol that no
    task evaluated — its latest bar, and every bar before it that closed at most
    SIGNAL_MAX_DELAY_SEC ago and inside today's session (a signal of an older bar would be
    stale; a large delay must not walk back over the history). Since bar-close
    batching one lost task message (kombu's Redis transport can lose a message it popped when
    Redis goes down before it recorded it as unacknowledged) is a whole minute of a shard, not
    only the latest one: the soak lost the 4 bars of one minute so. Evaluating is idempotent
    (a bar's FeatureSnapshot claims it), so a bar whose task is merely queued is safe."""
    from marketdata.calendar import session_at
    from marketdata.selectors import bars_as_data
    from strategies.models import FeatureSnapshot

    handled = 0
    session = session_at(now)
    since = now - timedelta(seconds=settings.SIGNAL_MAX_DELAY_SEC) - BAR
    since = max(since, session.open) if session is not None else None
    for symbol in settings.SYMBOLS:
        stored = bars_as_data(symbol=symbol, start=since, end=now) if since else []
        stored += bars_as_data(symbol=symbol, limit=1)
        closed = {b.ts: b for b in stored if b.ts + BAR <= now}
        if not closed:
            continue
        evaluated = set(
            FeatureSnapshot.objects.filter(
                symbol=symbol.upper(), bar_ts__in=list(closed)
            ).values_list("bar_ts", flat=True)
        )
        for ts in sorted(closed):
            if ts not in evaluated:  # the stream never ran this bar through the pipeline
                handled += len(process_bar_close(bar=closed[ts]))
    return handled


def signals_resume(*, now: datetime, wall_now: datetime | None = None) -> dict:
    """Beat safety net for signals left `generated`: a bar task that evaluated its bar and then
    vanished (its message lost in a broker restart, an error outside the retry) leaves them
    undecided, and the journal would say nothing true about them. A signal stored at least
    SIGNAL_RESUME_AFTER_SEC ago (wall time: its own task had that long) is decided now while
    its bar closed at most SIGNAL_MAX_DELAY_SEC ago (market time), else marked failed with the
    code SIGNAL_STALE — a late entry is not the trade the setup saw. Deciding twice is
    impossible: the decision re-reads the signal under the decision lock."""
    from django.utils import timezone

    from strategies.models import Signal

    wall_now = wall_now or timezone.now()
    due = Signal.objects.filter(
        outcome="generated",
        created_at__lte=wall_now - timedelta(seconds=settings.SIGNAL_RESUME_AFTER_SEC),
    ).order_by("created_at", "id")
    config = RiskConfig.from_settings()
    counts = {"resumed": 0, "stale": 0}
    for signal in due[:500]:
        age = (now - (signal.bar_ts + BAR)).total_seconds()
        if age < 0:
            continue  # its bar closes after the market time given: not due yet
        if age <= settings.SIGNAL_MAX_DELAY_SEC:
            log.warning("signal %s (%s %s) left undecided: deciding it now", signal.pk,
                        signal.setup, signal.symbol)  # fmt: skip
            try:
                signal_handle(signal=signal, now=now, config=config)
            except DATABASE_GONE:
                raise
            except Exception as exc:  # one bad signal never stops the sweep
                _signal_failed(candidate_of(signal), exc)
            counts["resumed"] += 1
            continue
        log.warning("signal %s (%s %s) left undecided %.0f s after its bar: stale", signal.pk,
                    signal.setup, signal.symbol, age)  # fmt: skip
        with decision_lock():
            signal.refresh_from_db(fields=["outcome"])
            if signal.outcome != "generated":
                continue
            signal_outcome_set(
                signal=signal,
                outcome="failed",
                checks=[{
                    "code": "SIGNAL_STALE", "stage": "trading", "passed": False,
                    "detail": f"left undecided; found {age:.0f} s after its bar closed",
                }],
            )  # fmt: skip
        counts["stale"] += 1
    return counts


def exits_tick_run(*, now: datetime, config: RiskConfig | None = None) -> int:
    """Between bars: sync working orders with a live broker, apply the clock rules (time
    stops, session close), keep every open trade protected, escalate timed-out entry limits,
    check the kill switch."""
    config = config or RiskConfig.from_settings()
    broker = broker_get()
    # The account event stream applies fills and states as they happen; polling every
    # working order is the fallback while it is down (trading.account_stream).
    if broker.name != "paper" and not stream_is_live():
        for order in working_orders(broker=broker.name).exclude(broker_order_id=""):
            order_sync(order=order, now=now, broker=broker)
    ctx = StepContext(
        config=config,
        params=_params_cache(config),
        flat_at=lambda at: flat_time(at, settings.FLATTEN_BEFORE_CLOSE_MIN),
        costs=_costs(broker),
        escalate_by_clock=broker.name != "paper",
    )
    done = clock_step(_ledger(broker), now=now, ctx=ctx)
    if paper_book_active():  # the paper book's clock rules and its own loss limit
        book_broker = paper_book_broker()
        book_ctx = replace(ctx, costs=_costs(book_broker), escalate_by_clock=False)
        done += clock_step(_ledger(book_broker, book=Book.PAPER), now=now, ctx=book_ctx)
    return len(done)


def clock_tick(*, now: datetime, config: RiskConfig | None = None) -> int:
    """A replay's beat: the exit manager's tick at `now` when anything is alive in the account
    or, while the account trades live, in the paper book (paper replays run it at each minute
    boundary, so the clock rules need no bar). A daily-loss halt due to lift lifts even when
    nothing is alive (the flatten left nothing behind)."""
    ledger = _ledger()
    alive, halt = ledger.tick_read()  # one round trip at a quiet minute
    lifecycle.halt_lift(ledger, now=now, plan=halt)
    alive = alive or (
        paper_book_active() and _ledger(paper_book_broker(), book=Book.PAPER).anything_alive()
    )
    if not alive:
        return 0
    return exits_tick_run(now=now, config=config)
