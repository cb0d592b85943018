"""The live/replay path for one closed bar:

1. paper fills: working paper orders of the bar's symbol fill on this bar (they were decided
   at an earlier bar's close); pegged entry limits that timed out become market orders;
2. the strategy engine evaluates the stored bar (`strategies.services.evaluate_bar`);
3. the exit manager runs for trades in the bar's symbol, then the daily-loss kill switch;
4. each generated signal: under the decision lock, exposure → risk rules → trade + entry order
   rows; after the lock the entry goes to the broker; the Signal row gets its outcome
   (risk_blocked / approved → dry_run (paper) or submitted (live broker accepted) / failed).
"""

from __future__ import annotations

import logging
import time as wall
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings

from autotrader_site.metrics import BAR_TO_DECISION_SECONDS
from marketdata.types import BarData
from risk import rules
from risk.config import RiskConfig
from risk.selectors import symbol_params_get
from risk.services import decision_lock
from risk.types import Intent
from trading import services
from trading.brokers import broker_get
from trading.exits import exits_manage
from trading.models import OrderClass, OrderRole, OrderStatus, OrderType
from trading.selectors import exposure_snapshot, open_trades, working_orders

log = logging.getLogger(__name__)
BAR = timedelta(minutes=1)


def _strategies():
    from strategies import services as strategy_services

    return strategy_services


def signal_outcome_set(*, signal, outcome: str, checks=None, qty=None):
    """Annotate the journal row through the strategy app (it counts the metric and appends to
    events.jsonl)."""
    return _strategies().signal_outcome_set(signal=signal, outcome=outcome, checks=checks, qty=qty)


def paper_bar_process(*, bar: BarData, config: RiskConfig, broker=None) -> int:
    """Fill working paper orders of `bar.symbol` on this bar. Orders created during the bar
    (a protective stop after an entry fill, a market order replacing a timed-out limit) are
    eligible on the same bar. Returns the number of fills."""
    broker = broker or broker_get()
    if broker.name != "paper":
        return 0
    bar_end = bar.ts + BAR
    limit_timeout = timedelta(seconds=config.entry_limit_timeout_sec)
    count = 0
    for _ in range(6):
        eligible = list(
            working_orders(symbol=bar.symbol, broker="paper")
            .exclude(status=OrderStatus.NEW)
            .filter(created_at__lte=bar.ts)
        )
        if not eligible:
            break
        fills = broker.bar_fills(eligible, bar)
        applied = 0
        for fill in fills:
            order = next(o for o in eligible if o.pk == fill.order_id)
            order.refresh_from_db()
            if not order.is_working:
                continue
            if services.fill_apply(
                order=order,
                qty=fill.qty,
                price=fill.price,
                ts=fill.ts,
                broker_fill_id=f"{order.broker_order_id}-{bar.ts:%Y%m%d%H%M}-{order.filled_qty}",
            ):
                applied += 1
        filled_ids = {f.order_id for f in fills}
        replaced = 0
        for order in eligible:
            if (
                order.pk not in filled_ids
                and order.role == OrderRole.ENTRY
                and order.order_type == OrderType.LIMIT
                and order.order_class == OrderClass.EQUITY
                and order.created_at + limit_timeout < bar_end
            ):
                replacement = services.entry_limit_replace(order=order, now=bar.ts, broker=broker)
                replaced += replacement is not None
        count += applied
        if not applied and not replaced:
            break
    return count


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


def signal_handle(*, signal, now: datetime, config: RiskConfig, broker=None) -> str:
    """Risk-check one generated signal and, if approved, open its trade and send the entry.
    Returns the signal's final outcome."""
    broker = broker or broker_get()
    if signal.outcome != "generated":
        return signal.outcome
    if signal.entry_price is None:
        signal_outcome_set(
            signal=signal,
            outcome="risk_blocked",
            checks=[
                {
                    "stage": "risk",
                    "code": "NO_PRICE",
                    "passed": False,
                    "message": "signal has no entry price",
                }
            ],
            qty=0,
        )
        return "risk_blocked"
    params = symbol_params_get(symbol=signal.execution_symbol, config=config)
    entry = Decimal(signal.entry_price)
    stop, t1, t2, use_otoco = services.bracket_levels(
        entry=entry,
        params=params,
        stop=signal.stop_price,
        t1=signal.target_one,
        t2=signal.target_two,
    )
    intent = Intent(
        symbol=signal.execution_symbol,
        entry_price=entry,
        stop_price=stop,
        setup=signal.setup,
        signal_symbol=signal.symbol,
        policy_window=_policy_window(signal),
    )
    quote = _quote(broker, signal.execution_symbol, entry)
    balances = _balances(broker)
    with decision_lock():
        exposure = exposure_snapshot(
            now=now,
            cash=balances.cash if balances else None,
            buying_power=balances.buying_power if balances else None,
        )
        decision = rules.evaluate(intent, exposure, config, now, params)
        if not decision.approved:
            signal_outcome_set(
                signal=signal,
                outcome="risk_blocked",
                checks=decision.checks_as_dicts(),
                qty=decision.qty,
            )
            return "risk_blocked"
        signal_outcome_set(
            signal=signal, outcome="approved", checks=decision.checks_as_dicts(), qty=decision.qty
        )
        trade = services.trade_open(
            signal=signal,
            decision=decision,
            intent=intent,
            params=params,
            config=config,
            now=now,
            use_otoco=use_otoco,
            quote=quote,
            broker=broker,
        )
        if t1 is None:
            trade.target_one = None
        if t2 is not None:
            trade.target_two = t2
        trade.save(update_fields=["target_one", "target_two"])
    order = services.entry_submit(trade=trade, now=now, broker=broker)
    if order is None or order.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
        reason = (order.reject_reason or order.status) if order is not None else "no entry order"
        signal_outcome_set(
            signal=signal,
            outcome="failed",
            checks=[
                {"stage": "trading", "code": "ORDER_REJECTED", "passed": False, "message": reason}
            ],
        )
        return "failed"
    if broker.name != "paper" and order.order_type == OrderType.LIMIT and order.is_working:
        _escalation_schedule(order, config)
    outcome = "dry_run" if broker.name == "paper" else "submitted"
    signal_outcome_set(
        signal=signal,
        outcome=outcome,
        checks=[
            {
                "stage": "trading",
                "code": "ORDER_SENT",
                "passed": True,
                "message": f"{order.order_type} {order.qty} {order.symbol} tag {order.tag}",
            }
        ],
    )
    return outcome


def _escalation_schedule(order, config: RiskConfig) -> None:
    """Live: turn the pegged limit into a market order ENTRY_LIMIT_TIMEOUT_SEC after sending
    (a delayed task; the exit-manager tick is the fallback when tasks run in-process)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    from trading.tasks import entry_escalate

    entry_escalate.apply_async(args=[order.pk], countdown=config.entry_limit_timeout_sec)


def _quote(broker, symbol: str, ref: Decimal):
    """The quote the entry is planned on: the paper broker's synthetic spread around the
    signal's price, or the broker's live quote."""
    if broker.name == "paper":
        return broker.quote_around(symbol, ref)
    try:
        return broker.quote(symbol)
    except Exception:  # a missing quote means a market entry, never a crash
        log.exception("quote for %s failed; entering at market", symbol)
        return None


def _balances(broker):
    try:
        return broker.balances()
    except Exception:
        log.exception("balances unavailable; cash rules will block")
        return None


def kill_switch_check(*, now: datetime, config: RiskConfig) -> bool:
    """Daily loss limit: when today's P&L reaches -RISK_MAX_DAILY_LOSS_USD, HALT and flatten.
    Returns True when it fired now."""
    from risk.selectors import trading_state_get
    from risk.services import trading_state_set
    from trading.selectors import day_pnl

    if config.max_daily_loss_usd <= 0:
        return False
    pnl = day_pnl(now=now)
    if pnl > -config.max_daily_loss_usd:
        return False
    if trading_state_get().state == "HALTED":
        return False
    trading_state_set(
        state="HALTED",
        reason=f"daily loss limit: day P&L {pnl:.2f} <= -{config.max_daily_loss_usd}",
        actor="kill-switch",
    )
    services.positions_flatten(reason="kill_switch", now=now)
    return True


def process_bar_close(*, bar: BarData, config: RiskConfig | None = None) -> list:
    """Everything one closed bar triggers; returns the Signals handled."""
    started = wall.perf_counter()
    config = config or RiskConfig.from_settings()
    now = bar.ts + BAR
    broker = broker_get()
    fills = paper_bar_process(bar=bar, config=config, broker=broker)
    signals = _strategies().evaluate_bar(symbol=bar.symbol, bar_ts=bar.ts, now=now) or []
    managed = exits_manage(now=now, symbol=bar.symbol, bar=bar, config=config, broker=broker)
    if fills or managed or open_trades(symbol=bar.symbol).exists():
        # mark to market only where something is held (one query less per idle bar)
        services.bar_mark(symbol=bar.symbol, price=Decimal(str(bar.close)))
        kill_switch_check(now=now, config=config)
    if broker.name != "paper":
        services.entries_escalate(now=now, config=config, broker=broker)
    handled = []
    for signal in signals:
        try:
            signal_handle(signal=signal, now=now, config=config, broker=broker)
        except Exception:
            log.exception("signal %s failed in risk/trading", signal.pk)
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
        handled.append(signal)
        BAR_TO_DECISION_SECONDS.observe(wall.perf_counter() - started)
    if settings.DEBUG:
        log.debug("bar %s %s handled %d signals", bar.symbol, bar.ts, len(handled))
    return handled


def scan_latest(*, now: datetime) -> int:
    """Beat safety net: run the pipeline on the latest stored bar of each configured symbol
    whose bar has not been evaluated yet (evaluate_bar returns [] for an evaluated bar)."""
    from marketdata.selectors import bars_as_data
    from strategies.models import FeatureSnapshot

    handled = 0
    for symbol in settings.SYMBOLS:
        last = bars_as_data(symbol=symbol, limit=1)
        if not last or last[-1].ts + BAR > now:
            continue
        if FeatureSnapshot.objects.filter(symbol=symbol, bar_ts=last[-1].ts).exists():
            continue  # the stream already ran this bar through the pipeline
        handled += len(process_bar_close(bar=last[-1]))
    return handled


def exits_tick_run(*, now: datetime, config: RiskConfig | None = None) -> int:
    """Between bars: sync working orders with a live broker, apply the clock rules (time
    stops, session close), keep every open trade protected, escalate timed-out entry limits,
    check the kill switch."""
    config = config or RiskConfig.from_settings()
    broker = broker_get()
    if broker.name != "paper":
        for order in working_orders(broker=broker.name).exclude(broker_order_id=""):
            services.order_sync(order=order, now=now, broker=broker)
        services.entries_escalate(now=now, config=config, broker=broker)
    done = exits_manage(now=now, config=config, broker=broker)
    kill_switch_check(now=now, config=config)
    return len(done)
