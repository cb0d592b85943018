"""Writes of the strategy stage: evaluate a stored bar into journaled Signal rows, and annotate
them as later stages (risk, trading) decide."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction

from autotrader_site.clock import clock
from autotrader_site.metrics import SIGNAL_TOTAL
from strategies import policies
from strategies.config import StrategyConfig
from strategies.evaluation import SETUPS_KEY, cooldown_apply, cooldown_window, setups_decide
from strategies.execution_map import execution_levels
from strategies.feature_store import features_at, features_latest
from strategies.features.sessions import bar_close_et, session_minute
from strategies.journal import journal_append, json_safe
from strategies.models import Book, ClaimState, FeatureSnapshot, Signal, SignalOutcome
from strategies.options_gate import options_checks
from strategies.selectors import signal_last_fired, signal_traded_count
from strategies.setups.base import Decision

log = logging.getLogger(__name__)


def _check(stage: str, code: str, passed: bool, message: str) -> dict:
    return {"stage": stage, "code": code, "passed": passed, "message": message}


def _failed_codes(checks: list[dict]) -> list[str]:
    out: list[str] = []
    for c in checks:
        if not c.get("passed", True) and c.get("code") not in out:
            out.append(c["code"])
    return out


def _signal_plan(*, decision: Decision, row: dict, symbol: str, cfg: StrategyConfig, book) -> dict:
    """Everything a fired decision becomes: execution levels, policy and options checks, outcome.
    Shared by evaluate_bar (which saves it) and signals_preview (which only shows it)."""
    bar_ts = row["ts"]
    exec_symbol = cfg.execution_symbol(symbol)
    checks = [_check("setup", "SETUP_FIRED", True, "; ".join(decision.reasons))]
    book_check = _paper_mode_check(decision)
    ledger_book = Book.ACCOUNT if book_check is None else Book.PAPER
    if book_check is not None:
        checks.append(book_check)
    features = {k: v for k, v in row.items() if k != SETUPS_KEY}
    levels = execution_levels(
        symbol=symbol,
        execution_symbol=exec_symbol,
        bar_ts=bar_ts,
        src_close=row["close"],
        entry=decision.entry,
        stop=decision.stop,
        target_one=decision.target_one,
        target_two=decision.target_two,
        atr=row["atr_14"],
    )
    plan = {
        "setup": decision.setup,
        "version": decision.version,
        "execution_symbol": exec_symbol,
        "entry_price": None,
        "stop_price": None,
        "target_one": None,
        "target_two": None,
        "session_policy": "",
        "book": ledger_book,
        "features": features,
    }
    if levels is None:
        checks.append(
            _check(
                "execution",
                "EXECUTION_PRICE_MISSING",
                False,
                f"no stored {exec_symbol} bar within 5 minutes of {bar_ts:%H:%M}Z",
            )
        )
        plan.update(checks=checks, outcome=SignalOutcome.FAILED)
        return plan
    if exec_symbol != symbol:
        checks.append(
            _check(
                "execution",
                "EXECUTION_MAPPED",
                True,
                f"{symbol} levels x {levels.ratio:.6f} ({exec_symbol} close / {symbol} close)",
            )
        )
    features["exec_atr"] = levels.exec_atr
    features["exec_ratio"] = levels.ratio
    plan.update(
        entry_price=levels.entry,
        stop_price=levels.stop,
        target_one=levels.target_one,
        target_two=levels.target_two,
    )
    outcome = SignalOutcome.GENERATED
    if book is not None:
        close_at = bar_close_et(bar_ts)
        policy = book.active(close_at)
        if policy is None:
            policy_checks = [policies.no_session_check(close_at.astimezone(book.timezone))]
        else:
            plan["session_policy"] = policy.name
            start, end = policies.bar_ts_window(
                book, policy, close_at.astimezone(book.timezone).date()
            )
            policy_checks = policies.policy_checks(
                policy,
                setup=decision.setup,
                features=row,
                execution_symbol=exec_symbol,
                etf_symbols=cfg.etf_symbols,
                trades_in_window=signal_traded_count(start=start, end=end, book=ledger_book),
            )
            features["policy_window"] = [policy.start.isoformat(), policy.end.isoformat()]
            if policy.time_stop_sec is not None:
                features["time_stop_sec"] = policy.time_stop_sec
        checks += policy_checks
        if _failed_codes(policy_checks):
            outcome = SignalOutcome.POLICY_BLOCKED
    if outcome == SignalOutcome.GENERATED:
        opt = options_checks(exec_symbol, cfg)
        checks += opt
        if _failed_codes(opt):
            outcome = SignalOutcome.OPTIONS_BLOCKED
    plan.update(checks=checks, outcome=outcome)
    return plan


def _paper_mode_check(decision: Decision) -> dict | None:
    """A setup whose current version nobody approved for live trading must not reach the live
    broker: with DRY_RUN=0 its signal trades on the paper book (`trading.paper_book`), never
    the account; this passed check says so in the journal. With DRY_RUN=1 every signal trades
    on paper anyway (the account is the paper broker): None."""
    from django.conf import settings

    from strategies.setups.registry import setup_get

    entry = setup_get(decision.setup)
    mode = entry.mode if entry is not None else "paper"
    if mode == "live" or settings.DRY_RUN:
        return None
    return _check(
        "setup",
        "SETUP_PAPER_MODE",
        True,
        f"{decision.setup} version {decision.version} is in paper mode (not approved for"
        " live): traded on the paper book, never the account",
    )


def _announce(signal: Signal, event: str, decided_at: datetime | None = None) -> None:
    SIGNAL_TOTAL.labels(setup=signal.setup, outcome=signal.outcome).inc()
    journal_append(
        {
            "event": event,
            "decided_at": decided_at or clock.now(),
            "signal_id": signal.pk,
            "setup": signal.setup,
            "setup_version": signal.setup_version,
            "symbol": signal.symbol,
            "execution_symbol": signal.execution_symbol,
            "bar_ts": signal.bar_ts,
            "outcome": signal.outcome,
            "reasons": signal.reasons,
            "qty": signal.qty,
            "entry_price": signal.entry_price,
            "stop_price": signal.stop_price,
            "target_one": signal.target_one,
            "target_two": signal.target_two,
            "session_policy": signal.session_policy,
            "book": signal.book,
            "checks": signal.checks,
        }
    )


@dataclass(frozen=True)
class BarEvaluation:
    """What evaluating a bar gave: the signals saved now, and whether the bar had been
    evaluated before (its claim existed) — only then can an earlier attempt have left
    signals undecided (claim-and-resume)."""

    signals: list
    evaluated_before: bool = False
    claimed: str | None = None  # the state this call claimed the bar in (None: no claim made)


def evaluate_bar(
    *,
    symbol: str,
    bar_ts: datetime,
    now: datetime | None = None,
    cfg: StrategyConfig | None = None,
) -> list[Signal]:
    """The signals saved by evaluating the stored bar (see `bar_evaluate`)."""
    return bar_evaluate(symbol=symbol, bar_ts=bar_ts, now=now, cfg=cfg).signals


def snapshot_features(row: dict, decisions: list[Decision]) -> dict:
    """What a bar's claim stores: its feature row (without the setups' raw evaluations) and
    every setup's decision."""
    return json_safe(
        {
            **{k: v for k, v in row.items() if k != SETUPS_KEY},
            "decisions": [d.as_dict() for d in decisions],
        }
    )


def bar_evaluate(
    *,
    symbol: str,
    bar_ts: datetime,
    now: datetime | None = None,
    cfg: StrategyConfig | None = None,
    row: dict | None = None,
    quiet_state: str = ClaimState.CLAIMED,
) -> BarEvaluation:
    """Evaluate every enabled setup on the STORED bar (symbol, bar_ts), at most once.

    Returns the saved Signal rows of the setups that fired (outcome generated, policy_blocked,
    options_blocked, or failed when the execution price is unknown). A bar already evaluated
    (its FeatureSnapshot row, inserted with the signals, already exists: also when another worker
    wins the race), not stored, or outside the regular session returns [].
    Decisions use the bar's close time (so replay and live agree); `now` is the decision time
    recorded in the events journal (default: the market clock).
    `row`: the bar's feature row when the caller computed it already (a batch of bars,
    `strategies.feature_store.features_many`). `quiet_state`: the claim's state when no setup
    fires (`done` when the caller knows nothing else is left to do for the bar); a bar whose
    setups fire is claimed `claimed`, its step marks it done (`claims_done`).
    """
    cfg = cfg or StrategyConfig.from_settings()
    symbol = symbol.upper()
    if session_minute(bar_ts) is None:
        return BarEvaluation([])  # pre/post-market: never evaluated (docs/strategy.md)
    row = row if row is not None else features_at(symbol, bar_ts, cfg)
    if row is None:
        log.warning("evaluate_bar: no stored bar %s %s; skipped", symbol, bar_ts)
        return BarEvaluation([])
    decisions = setups_decide(row, symbol=symbol, cfg=cfg)
    if any(d.fired for d in decisions):  # the cooldown needs the journal only then
        last = signal_last_fired(symbol=symbol, before=bar_ts, window_sec=cooldown_window(cfg))
        decisions = cooldown_apply(decisions, bar_ts=bar_ts, last_fired=last, cfg=cfg)
    snapshot = FeatureSnapshot(
        symbol=symbol, bar_ts=bar_ts, features=snapshot_features(row, decisions)
    )
    fired = [d for d in decisions if d.fired]
    if not fired:
        snapshot.state = quiet_state
    if not fired:
        # the common case: one INSERT claims the bar (no explicit transaction unless the caller
        # has one, where a savepoint keeps a conflict from breaking it)
        try:
            if connection.in_atomic_block:
                with transaction.atomic():
                    snapshot.save(force_insert=True)
            else:
                snapshot.save(force_insert=True)
        except IntegrityError:  # evaluated before (by this or another worker)
            return BarEvaluation([], evaluated_before=True)
        return BarEvaluation([], claimed=quiet_state)
    book = policies.policy_book()
    plans = [_signal_plan(decision=d, row=row, symbol=symbol, cfg=cfg, book=book) for d in fired]
    try:
        with transaction.atomic():
            snapshot.save(force_insert=True)
            signals = [
                Signal.objects.create(
                    setup=p["setup"],
                    setup_version=p["version"],
                    symbol=symbol,
                    execution_symbol=p["execution_symbol"],
                    bar_ts=bar_ts,
                    entry_price=p["entry_price"],
                    stop_price=p["stop_price"],
                    target_one=p["target_one"],
                    target_two=p["target_two"],
                    session_policy=p["session_policy"],
                    book=p["book"],
                    features=json_safe(p["features"]),
                    checks=p["checks"],
                    reasons=_failed_codes(p["checks"]),
                    outcome=p["outcome"],
                )
                for p in plans
            ]
    except IntegrityError:
        log.info("evaluate_bar: %s %s already evaluated", symbol, bar_ts)
        return BarEvaluation([], evaluated_before=True)
    decided_at = (now or clock.now()) if signals else None
    for signal in signals:
        _announce(signal, "signal", decided_at)
    return BarEvaluation(signals, claimed=ClaimState.CLAIMED)  # trading routes each by its book


def claims_insert_done(claims: list[tuple[str, datetime, dict]]) -> set[tuple[str, datetime]]:
    """Claim many quiet bars (no setup fired, nothing of theirs working or open) in ONE
    statement, each `done` at once: (symbol, bar_ts, snapshot features) in order. Returns the
    (symbol, bar_ts) claimed now; a bar claimed before (by another worker or an earlier attempt)
    is left as it is and missing from the answer."""
    if not claims:
        return set()
    if connection.vendor != "postgresql":  # the embedded SQLite session: a row at a time
        return _claims_insert_done_rows(claims)
    table = FeatureSnapshot._meta.db_table
    # one JSON document of [symbol, bar_ts, features] rows: one parameter to bind, not three
    # arrays (psycopg escapes a text array element by element)
    sql = (
        f"INSERT INTO {table} (symbol, bar_ts, features, state, created_at) "
        "SELECT c.e->>0, (c.e->>1)::timestamptz, c.e->2, %s, now() "
        "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS c(e, n) ORDER BY c.n "
        "ON CONFLICT (symbol, bar_ts) DO NOTHING RETURNING symbol, bar_ts"
    )
    rows = [[symbol.upper(), bar_ts.isoformat(), features] for symbol, bar_ts, features in claims]
    with connection.cursor() as cursor:
        cursor.execute(sql, [ClaimState.DONE, json.dumps(rows)])  # as the JSONField stores it
        return {(symbol, bar_ts) for symbol, bar_ts in cursor.fetchall()}


def _claims_insert_done_rows(claims: list[tuple[str, datetime, dict]]) -> set:
    """`claims_insert_done` without PostgreSQL's ON CONFLICT ... RETURNING: each row in its own
    savepoint, a conflict meaning claimed before."""
    claimed = set()
    for symbol, bar_ts, features in claims:
        try:
            with transaction.atomic():
                FeatureSnapshot.objects.create(
                    symbol=symbol.upper(), bar_ts=bar_ts, features=features, state=ClaimState.DONE
                )
        except IntegrityError:
            continue
        claimed.add((symbol.upper(), bar_ts))
    return claimed


def claims_done(*, symbol: str, bar_ts: datetime) -> None:
    """The bar's step ran to its end: a redelivered task skips it from now on."""
    FeatureSnapshot.objects.filter(symbol=symbol.upper(), bar_ts=bar_ts).exclude(
        state=ClaimState.DONE
    ).update(state=ClaimState.DONE)


@transaction.atomic
def signal_outcome_set(
    *, signal: Signal, outcome: str, checks: list[dict] | None = None, qty=None
) -> Signal:
    """Record a later stage's verdict: append its checks, set reasons (codes of every failed
    check so far), the outcome and qty; count the metric and journal the event."""
    if outcome not in SignalOutcome.values:
        raise ValueError(f"unknown signal outcome {outcome!r}")
    row = Signal.objects.select_for_update().get(pk=signal.pk)
    row.checks = list(row.checks or []) + [json_safe(c) for c in (checks or [])]
    row.reasons = _failed_codes(row.checks)
    row.outcome = outcome
    if qty is not None:
        row.qty = int(qty)
    row.save(update_fields=["checks", "reasons", "outcome", "qty", "updated_at"])
    _announce(row, "signal_outcome")
    # keep the caller's instance current
    signal.checks, signal.reasons, signal.outcome, signal.qty = (
        row.checks,
        row.reasons,
        row.outcome,
        row.qty,
    )
    signal.updated_at = row.updated_at
    return row


def signals_preview(
    *,
    symbols: list[str] | None = None,
    now: datetime | None = None,
    cfg: StrategyConfig | None = None,
) -> list[dict]:
    """What each enabled setup says now on the latest stored regular-session bar of each symbol:
    one dict per (symbol, setup) with status fired / not_fired / warming_up / no_data, reasons,
    and for a setup that fires the levels and policy/options checks it would get. Writes nothing."""
    from django.conf import settings

    cfg = cfg or StrategyConfig.from_settings()
    now = now or clock.now()
    book = policies.policy_book()
    out: list[dict] = []
    for symbol in [s.upper() for s in (symbols or settings.SYMBOLS)]:
        row = features_latest(symbol, now, cfg)
        if row is None:
            out.extend(
                {
                    "symbol": symbol,
                    "setup": name,
                    "status": "no_data",
                    "bar_ts": None,
                    "reasons": ["no stored regular-session bar"],
                    "checks": [],
                }
                for name in cfg.enabled_setups
            )
            continue
        last = signal_last_fired(symbol=symbol, before=row["ts"], window_sec=cooldown_window(cfg))
        for d in setups_decide(row, symbol=symbol, cfg=cfg, last_fired=last):
            item = {
                "symbol": symbol,
                "setup": d.setup,
                "status": d.status,
                "bar_ts": row["ts"],
                "reasons": d.reasons,
                "execution_symbol": cfg.execution_symbol(symbol),
                "checks": [],
            }
            if d.fired:
                plan = _signal_plan(decision=d, row=row, symbol=symbol, cfg=cfg, book=book)
                item.update(
                    {
                        "outcome": str(plan["outcome"]),
                        "entry_price": plan["entry_price"],
                        "stop_price": plan["stop_price"],
                        "target_one": plan["target_one"],
                        "target_two": plan["target_two"],
                        "session_policy": plan["session_policy"],
                        "book": str(plan["book"]),
                        "checks": plan["checks"],
                        "reasons": d.reasons + _failed_codes(plan["checks"]),
                    }
                )
            out.append(item)
    return out
