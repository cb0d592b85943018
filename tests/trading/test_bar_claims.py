"""The claim state of a bar (issue 18): a bar whose step ran to its end is `done`, and a
redelivered batch (a worker killed mid-batch: acks_late brings the message back) skips it
instead of stepping its paper fills and exits again; a bar claimed but not done resumes.
Real PostgreSQL; the paper broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketdata.services import bars_upsert
from risk.config import RiskConfig
from strategies.models import FeatureSnapshot, Signal
from tests.trading.helpers import bar, make_signal
from trading import bar_batch, pipeline
from trading.models import Fill, Order
from trading.tasks import on_bar_closed, on_bars_closed

pytestmark = pytest.mark.django_db
T = datetime(2025, 9, 17, 14, 30, tzinfo=UTC)  # 10:30 New York, a Wednesday
NEXT = T + timedelta(minutes=1)


def _entry_working(symbol: str) -> Order:
    """A signal of `symbol` decided at T's close: its pegged entry limit is working."""
    signal = make_signal(bar_ts=T, symbol=symbol)
    config = RiskConfig.from_settings()
    assert pipeline.signal_handle(signal=signal, now=NEXT, config=config) == "dry_run"
    return Order.objects.get(signal=signal, role="entry")


def _quiet(symbol: str, ts: datetime = NEXT):
    return bar(ts, "50.00", "50.10", "49.90", "50.00", symbol=symbol)


def test_a_redelivered_batch_does_not_step_a_handled_bar_again(paper, steps):
    """SPY's bar was claimed by an attempt that died before deciding its signal; the batch's
    first delivery decides it at the bar's close (a pegged entry limit, working) and marks
    the claim done. The redelivered message steps none of the three bars again: no fills
    check, exit manager, marks or kill switch for SPY's bar a second time (the entry is the
    next bar's business and stays working)."""
    FeatureSnapshot.objects.create(symbol="SPY", bar_ts=NEXT, features={})
    signal = make_signal(bar_ts=NEXT, symbol="SPY", entry="100.10", stop="99.10",
                         t1="101.10", t2="102.10")  # fmt: skip
    spy = bar(NEXT, "99.00", "100.20", "98.90", "100.10")  # opens below the entry limit
    bars = [_quiet("QQQ"), spy, _quiet("IWM")]
    bars_upsert(bars=bars)
    events = [b.as_event() for b in bars]

    on_bars_closed.apply(args=[events]).get()
    signal.refresh_from_db()
    assert signal.outcome == "dry_run"
    entry = Order.objects.get(signal=signal, role="entry")
    assert entry.status == "open" and not Fill.objects.exists()
    assert steps == [("SPY", NEXT)]  # the two quiet bars were claimed in the batch
    claims = FeatureSnapshot.objects.filter(bar_ts=NEXT).order_by("symbol")
    assert list(claims.values_list("symbol", "state")) == [
        ("IWM", "done"),
        ("QQQ", "done"),
        ("SPY", "done"),
    ]

    steps.clear()
    on_bars_closed.apply(args=[events]).get()  # the message comes back
    on_bar_closed.apply(args=[spy.as_event()]).get()  # or the bar alone, as a single-bar task
    entry.refresh_from_db()
    assert steps == []
    assert entry.status == "open" and not Fill.objects.exists()


def test_after_a_kill_mid_batch_the_done_bar_is_skipped_and_the_claimed_one_resumes(paper, steps):
    """Bar A finished before the kill (claim done); bar B was evaluated, its signal stored,
    and the worker died before deciding it (claim `claimed`)."""
    entry = _entry_working("QQQ")  # would fill on A's bar if A were stepped again
    FeatureSnapshot.objects.create(symbol="QQQ", bar_ts=NEXT, features={}, state="done")
    FeatureSnapshot.objects.create(symbol="SPY", bar_ts=NEXT, features={})
    undecided = make_signal(bar_ts=NEXT, symbol="SPY", entry="100.10", stop="99.10",
                            t1="101.10", t2="102.10")  # fmt: skip
    a = bar(NEXT, "99.00", "100.20", "98.90", "100.00", symbol="QQQ")
    b = bar(NEXT, "100.00", "100.20", "99.90", "100.10")
    bars_upsert(bars=[a, b])

    on_bars_closed.apply(args=[[a.as_event(), b.as_event()]]).get()
    entry.refresh_from_db()
    undecided.refresh_from_db()
    assert steps == [("SPY", NEXT)]
    assert entry.status not in ("filled", "partially_filled") and not entry.fills.exists()
    assert undecided.outcome == "dry_run"
    assert FeatureSnapshot.objects.get(symbol="SPY", bar_ts=NEXT).state == "done"


def test_a_symbol_stepped_in_full_keeps_its_later_bars_of_the_batch_in_full(
    paper, steps, monkeypatch
):
    """When a setup fires on DIA's first minute, its entry is decided at that bar's close: its
    next minute in the same batch must see that entry (it may fill on that bar), so it is not
    claimed with the quiet bars, whose live state was read before the batch."""
    later = NEXT + timedelta(minutes=1)
    bars = [_quiet("DIA"), _quiet("QQQ"), _quiet("DIA", later), _quiet("QQQ", later)]
    bars_upsert(bars=bars)
    real = bar_batch.setups_decide

    def decide(row, *, symbol, cfg, **kwargs):
        decisions = real(row, symbol=symbol, cfg=cfg, **kwargs)
        if symbol == "DIA" and row["ts"] == NEXT:
            decisions = [FiredOnce()]
        return decisions

    class FiredOnce:
        fired = True

    monkeypatch.setattr(bar_batch, "setups_decide", decide)
    on_bars_closed.apply(args=[[b.as_event() for b in bars]]).get()
    assert steps == [("DIA", NEXT), ("DIA", later)]
    claims = FeatureSnapshot.objects.order_by("bar_ts", "symbol")
    assert list(claims.values_list("symbol", "state")) == [
        ("DIA", "done"),
        ("QQQ", "done"),
        ("DIA", "done"),
        ("QQQ", "done"),
    ]
    assert not Signal.objects.filter(outcome="generated").exists()


def test_an_entry_opened_by_a_full_step_is_seen_by_a_later_bar_of_the_batch(
    paper, steps, monkeypatch
):
    """A signal on one symbol may trade another (SPX executes SPY): when DIA's full step opens
    an entry in IWM, IWM's bar later in the same batch — quiet when the batch read its live
    state — gets its full step too."""
    _entry_working("DIA")  # DIA's bar needs its full step
    bars = [_quiet("DIA"), _quiet("QQQ"), _quiet("IWM")]
    bars_upsert(bars=bars)
    real = pipeline.process_bar_close  # the `steps` spy

    def step_opening_iwm(*, bar, **kwargs):
        result = real(bar=bar, **kwargs)
        if bar.symbol == "DIA":
            _entry_working("IWM")
        return result

    monkeypatch.setattr(pipeline, "process_bar_close", step_opening_iwm)
    on_bars_closed.apply(args=[[b.as_event() for b in bars]]).get()
    assert steps == [("DIA", NEXT), ("IWM", NEXT)]
    claims = FeatureSnapshot.objects.filter(bar_ts=NEXT).order_by("symbol")
    assert list(claims.values_list("symbol", "state")) == [
        ("DIA", "done"),
        ("IWM", "done"),
        ("QQQ", "done"),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_quiet_bar_claimed_in_a_batch_stores_what_its_single_bar_step_stores(paper):
    """Two symbols with the same bars: one through the single-bar task, one through the batch
    task, minute by minute: the same feature snapshot (features and every setup's decision)."""
    from dataclasses import replace
    from datetime import date

    from autotrader_site.clock import MarketClock
    from marketdata.replay import synthetic_sessions

    template = synthetic_sessions(symbol="X", sessions=2, seed=11, end=date(2026, 3, 6))
    bars_upsert(bars=[replace(b, symbol=s) for s in ("AAA", "BBB") for b in template[:390]])
    try:
        for b in template[390:395]:
            single, batched = replace(b, symbol="AAA"), replace(b, symbol="BBB")
            bars_upsert(bars=[single, batched])
            MarketClock.set_replay_time(b.ts)
            on_bar_closed.apply(args=[single.as_event()]).get()
            on_bars_closed.apply(args=[[batched.as_event()]]).get()
    finally:
        MarketClock.set_replay_time(None)
    snapshots = {(f.symbol, f.bar_ts): f for f in FeatureSnapshot.objects.all()}
    assert len(snapshots) == 10
    for b in template[390:395]:
        a, c = snapshots[("AAA", b.ts)], snapshots[("BBB", b.ts)]
        assert a.features == c.features and a.features["decisions"]
        assert a.state == c.state == "done"
