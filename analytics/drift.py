"""The drift ledger: each live or paper trade beside the trade the backtester makes of the same
signal on the recorded bars, so "live differs from the backtest" becomes numbers per setup.

The simulation is the public backtest entry point (`analytics.backtest.runner.backtest_run`,
event mode: the live path's steps in the live order) over the stored bars, with the same
settings the live path reads, so a paper session replays to zero drift; what is left on a real
broker is what the simulation cannot know: slippage, queueing, missed fills, latency.

Pairing is by signal: (signal symbol, setup, bar start). Per pair: entry and exit price and
time differences, slippage in basis points of the simulated price (positive = live did worse:
paid more to enter, received less to exit), P&L of both, and the cost the model charged
(`analytics.cost_model`). A signal the simulation filled but live did not is a missed fill; a
live trade with no simulated twin is `live_only`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)
NY = ZoneInfo("America/New_York")
FOUR = Decimal("0.0001")
DRIFT_ALERT = "drift"


@dataclass(frozen=True)
class LiveTrade:
    """What the ledger recorded of one trade (prices on the execution symbol)."""

    trade_id: int
    symbol: str
    execution_symbol: str
    setup: str
    signal_ts: datetime
    qty: int
    filled: bool
    entry_ts: datetime | None
    entry_price: Decimal | None
    exit_ts: datetime | None
    exit_price: Decimal | None  # quantity-weighted over the exit fills
    pnl: Decimal | None
    exit_reason: str
    exits: tuple[tuple[datetime, int, Decimal, str], ...] = ()  # (ts, qty, price, order role)


def live_trades(*, symbols: list[str], start: datetime, end: datetime) -> list[LiveTrade]:
    """The account's trades of signals on bars in [start, end), with their entry and exit
    fills."""
    from trading.models import Fill, Trade

    trades = (
        Trade.objects.filter(
            signal__bar_ts__gte=start,
            signal__bar_ts__lt=end,
            symbol__in=symbols,
            book="account",  # the account's trades (the paper book is not what the account did)
        )
        .select_related("signal")
        .order_by("signal__bar_ts", "id")
    )
    fills: dict[int, list] = {}
    for f in Fill.objects.filter(order__trade__in=trades).select_related("order"):
        fills.setdefault(f.order.trade_id, []).append(f)
    out = []
    for t in trades:
        sells = sorted(
            (f for f in fills.get(t.pk, []) if f.side == "sell"), key=lambda f: (f.ts, f.pk)
        )
        buys = sorted(
            (f for f in fills.get(t.pk, []) if f.side == "buy"), key=lambda f: (f.ts, f.pk)
        )
        sold = sum(f.qty for f in sells)
        exit_price = (sum(f.price * f.qty for f in sells) / sold).quantize(FOUR) if sold else None
        out.append(
            LiveTrade(
                trade_id=t.pk,
                symbol=t.symbol,
                execution_symbol=t.execution_symbol,
                setup=t.setup,
                signal_ts=t.signal.bar_ts,
                qty=t.qty,
                filled=t.entry_price is not None and t.status in ("open", "closed"),
                entry_ts=buys[0].ts if buys else t.opened_at,
                entry_price=t.entry_price,
                exit_ts=sells[-1].ts if sells else None,
                exit_price=exit_price,
                pnl=t.realized_pnl if t.status == "closed" else None,
                exit_reason=t.exit_reason,
                exits=tuple((f.ts, f.qty, f.price, f.order.role) for f in sells),
            )
        )
    return out


def simulated_trades(*, symbols: list[str], start: date, end: date, config=None) -> list:
    """The backtester's trades on the stored bars of [start, end] (New York dates), warmed up
    like the live feature store (its warm-up days of bars before `start`)."""
    from analytics.backtest.config import BacktestConfig
    from analytics.backtest.runner import DataSpec, backtest_run
    from strategies.feature_store import warmup_days

    config = config or BacktestConfig.from_settings()
    first = start - timedelta(days=warmup_days(config.strategy))
    spec = DataSpec("db", tuple(symbols), first, end)
    result = backtest_run(spec=spec, config=config, mode="event")
    return [t for t in result.trades if start <= t.signal_ts.astimezone(NY).date() <= end]


def _bps(worse_by: Decimal, reference: Decimal) -> float | None:
    if reference is None or reference == 0 or worse_by is None:
        return None
    return float(worse_by / reference * 10000)


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else (a - b).total_seconds()


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(round(value, 4))).quantize(FOUR)


def drift_pair(live: LiveTrade | None, sim, *, modelled_bps: float | None) -> dict:
    """The fields of one DriftEntry from a live trade and/or a simulated TradeRecord."""
    from analytics.models import DriftStatus

    base = live or sim
    row = {
        "symbol": base.symbol,
        "execution_symbol": base.execution_symbol,
        "setup": base.setup,
        "signal_ts": live.signal_ts if live else sim.signal_ts,
        "trade_id": live.trade_id if live else None,
        "modelled_cost_bps": modelled_bps,
    }
    if sim is not None:
        row.update(
            sim_qty=sim.qty, sim_entry_ts=sim.entry_ts, sim_entry_price=_dec(sim.entry_price),
            sim_exit_ts=sim.exit_ts, sim_exit_price=_dec(sim.exit_price),
            sim_pnl=_dec(sim.pnl) if sim.closed else None,
            sim_exit_reason=sim.exit_reason if sim.closed else "open",
        )  # fmt: skip
    if live is not None and live.filled:
        row.update(
            live_qty=live.qty, live_entry_ts=live.entry_ts, live_entry_price=live.entry_price,
            live_exit_ts=live.exit_ts, live_exit_price=live.exit_price, live_pnl=live.pnl,
            live_exit_reason=live.exit_reason,
        )  # fmt: skip
    if sim is not None and live is not None and live.filled:
        row["status"] = DriftStatus.MATCHED
        row["legs"] = legs_pair(sim.legs, live.exits)
        sim_entry, sim_exit = row["sim_entry_price"], row["sim_exit_price"]
        row["entry_slippage_bps"] = _bps(live.entry_price - sim_entry, sim_entry)
        row["entry_delay_sec"] = _seconds(live.entry_ts, sim.entry_ts)
        if live.exit_price is not None and sim_exit is not None:
            row["exit_slippage_bps"] = _bps(sim_exit - live.exit_price, sim_exit)
            row["exit_delay_sec"] = _seconds(live.exit_ts, sim.exit_ts)
    elif sim is not None:
        row["status"] = DriftStatus.MISSED
    else:
        row["status"] = DriftStatus.LIVE_ONLY
    return row


def legs_pair(sim_legs, live_exits) -> list[dict]:
    """Exit legs side by side in time order (the n-th simulated leg with the n-th live exit
    fill); a leg only one side has keeps the other side empty."""
    out = []
    for i in range(max(len(sim_legs), len(live_exits))):
        leg = sim_legs[i] if i < len(sim_legs) else None
        fill = live_exits[i] if i < len(live_exits) else None
        out.append(
            {
                "reason": leg.reason if leg else "",
                "sim_qty": leg.qty if leg else None,
                "sim_ts": leg.ts.isoformat() if leg else None,
                "sim_price": str(_dec(leg.price)) if leg else None,
                "live_role": fill[3] if fill else "",
                "live_qty": fill[1] if fill else None,
                "live_ts": fill[0].isoformat() if fill else None,
                "live_price": str(fill[2].quantize(FOUR)) if fill else None,
            }
        )
    return out


@transaction.atomic
def drift_ledger_update(*, symbols: list[str], start: date, end: date, now: datetime,
                        config=None) -> dict:  # fmt: skip
    """Pair the trades of signals on [start, end] (New York dates) with their simulation and
    upsert one DriftEntry per signal; returns the per-setup summary of that range."""
    from analytics.cost_model import market_adverse_bps
    from analytics.models import DriftEntry
    from analytics.selectors import drift_summary

    lo = datetime.combine(start, time(0), NY)
    hi = datetime.combine(end + timedelta(days=1), time(0), NY)
    live = {(t.symbol, t.setup, t.signal_ts): t for t in live_trades(symbols=symbols, start=lo,
                                                                     end=hi)}  # fmt: skip
    sims = simulated_trades(symbols=symbols, start=start, end=end, config=config)
    sim = {(t.symbol, t.setup, t.signal_ts): t for t in sims}
    keys = sorted(set(live) | set(sim), key=lambda k: (k[2], k[1], k[0]))
    fields = [f.name for f in DriftEntry._meta.concrete_fields if f.name not in ("id",)]
    rows = []
    for key in keys:
        one_live, one_sim = live.get(key), sim.get(key)
        if one_sim is None and (one_live is None or not one_live.filled):
            continue  # neither traded: nothing to compare
        base = one_live or one_sim
        reference = getattr(one_sim, "entry_price", None) or getattr(one_live, "entry_price", None)
        modelled = market_adverse_bps(base.execution_symbol, reference)
        data = drift_pair(one_live, one_sim, modelled_bps=modelled)
        trade_id = data.pop("trade_id")
        values = {name: data.get(name) for name in fields if name not in ("trade", "computed_at")}
        for name in ("live_qty", "sim_qty"):
            values[name] = values[name] or 0
        for name in ("live_exit_reason", "sim_exit_reason"):
            values[name] = values[name] or ""
        values["legs"] = values["legs"] or []
        rows.append(DriftEntry(**values, trade_id=trade_id, computed_at=now))
    DriftEntry.objects.filter(signal_ts__gte=lo, signal_ts__lt=hi, symbol__in=symbols).delete()
    DriftEntry.objects.bulk_create(rows)
    summary = drift_summary(start=lo, end=hi)
    drift_observe(summary)
    return summary


def drift_observe(summary: dict) -> list[str]:
    """Publish the summary as gauges and alert when a setup's drift passes the thresholds
    (DRIFT_ALERT_BPS on the mean entry or exit slippage, DRIFT_ALERT_MISSED_PCT of missed
    fills, each once the setup has DRIFT_ALERT_MIN_TRADES pairs); returns what was alerted."""
    from analytics.drift_metrics import drift_gauges_set
    from wiring.alerts import alert_send

    drift_gauges_set(summary)
    alerted = []
    for setup, s in summary["by_setup"].items():
        if s["pairs"] < settings.DRIFT_ALERT_MIN_TRADES:
            continue
        worst = max(abs(s["entry_slippage_bps"] or 0.0), abs(s["exit_slippage_bps"] or 0.0))
        missed_pct = 100.0 * s["missed"] / s["pairs"]
        if worst > settings.DRIFT_ALERT_BPS or missed_pct > settings.DRIFT_ALERT_MISSED_PCT:
            alerted.append(setup)
            alert_send(
                DRIFT_ALERT,
                f"{setup}: live drifts from the backtest",
                entry_slippage_bps=s["entry_slippage_bps"],
                exit_slippage_bps=s["exit_slippage_bps"],
                missed_fills=f"{s['missed']} of {s['pairs']}",
                threshold_bps=settings.DRIFT_ALERT_BPS,
            )
    return alerted


def drift_symbols(*, start: date, end: date) -> list[str]:
    """Signal symbols that journaled signals on [start, end] (New York dates): the ones the
    simulation must replay together (their risk limits interact)."""
    from strategies.models import Signal

    lo = datetime.combine(start, time(0), NY)
    hi = datetime.combine(end + timedelta(days=1), time(0), NY)
    found = Signal.objects.filter(bar_ts__gte=lo, bar_ts__lt=hi).values_list("symbol", flat=True)
    order = list(settings.SYMBOLS)
    return sorted(set(found), key=lambda s: (order.index(s) if s in order else len(order), s))
