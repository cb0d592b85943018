"""Each setup fires on exactly the bar it was built for: not one bar earlier, not one later."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from marketdata.services import bars_upsert
from strategies.config import StrategyConfig
from strategies.evaluation import setups_decide
from strategies.feature_store import engines_reset, new_engine
from strategies.models import Signal
from strategies.services import evaluate_bar
from tests.strategies import sequences
from tests.strategies.sequences import BUILDERS


@pytest.fixture
def cfg(settings):
    return replace(StrategyConfig(), execution_map={"SPX": "SPY", "NDX": "QQQ"})


def run(bars, cfg, symbol="SPY"):
    """(bar start, decision) for every regular-session bar, cooldown from earlier fires."""
    engine = new_engine(symbol, cfg)
    last: dict = {}
    out = []
    for b in bars:
        row = engine.update(b.ts, b.open, b.high, b.low, b.close, b.volume)
        if row is None:
            continue
        (d,) = setups_decide(row, symbol=symbol, cfg=cfg, last_fired=last)
        if d.fired:
            last[d.setup] = b.ts
        out.append((b.ts, d))
    return out


@pytest.mark.parametrize("setup", sorted(BUILDERS))
def test_setup_fires_exactly_on_the_built_bar(setup, cfg):
    seq = BUILDERS[setup]()
    decisions = run(seq.bars, replace(cfg, enabled_setups=(setup,), cooldown_sec=0))
    fired = [ts for ts, d in decisions if d.fired]
    assert fired == [seq.expected]
    before = dict(decisions)[seq.expected - timedelta(minutes=1)]
    assert before.status in {"not_fired", "warming_up"} and before.reasons


@pytest.mark.parametrize("setup", sorted(BUILDERS))
def test_fired_levels_follow_the_atr_multipliers(setup, cfg):
    seq = BUILDERS[setup]()
    c = replace(cfg, enabled_setups=(setup,), cooldown_sec=0)
    d = dict(run(seq.bars, c))[seq.expected]
    assert d.entry == seq.bars[[b.ts for b in seq.bars].index(seq.expected)].close
    assert d.stop < d.entry
    assert d.target_one <= d.target_two
    if setup not in {"ORB", "VWAP_MEAN"}:
        atr = (d.target_one - d.entry) / c.target_one_atr
        assert d.stop == pytest.approx(d.entry - c.stop_atr * atr)
        assert d.target_two == pytest.approx(d.entry + c.target_two_atr * atr)


def test_warm_up_is_reported_with_the_missing_features(cfg):
    seq = sequences.ema_cross()
    first = run(seq.bars[:1], replace(cfg, enabled_setups=("EMA_CROSS",)))[0][1]
    assert first.status == "warming_up"
    assert "ema_20" in first.reasons[0] and "ema_50" in first.reasons[0]
    # ORB in the first session: the 5-minute EMA50 needs 250 minutes of history
    seq = sequences.orb()
    day_one = [b for b in seq.bars if b.ts.date() == sequences.SESSIONS[0]]
    orb = dict(run(day_one, replace(cfg, enabled_setups=("ORB",))))
    at_1030 = orb[sequences.et(sequences.SESSIONS[0], "10:30")]
    assert at_1030.status == "warming_up" and "ema5m_50" in at_1030.reasons[0]


def test_vwap_reclaim_needs_rvol_above_minimum(cfg):
    seq = sequences.vwap_reclaim()
    decisions = dict(
        run(seq.bars, replace(cfg, enabled_setups=("VWAP_RECLAIM",), vwap_min_rvol=2.5))
    )
    d = decisions[seq.expected]
    assert not d.fired
    assert d.reasons == ["not met: rvol >= VWAP_MIN_RVOL (rvol=2, VWAP_MIN_RVOL=2.5)"]


def test_vwap_reclaim_waits_for_power_hour_on_power_hour_symbols(cfg):
    seq = sequences.vwap_reclaim("SPX")
    base = replace(cfg, enabled_setups=("VWAP_RECLAIM",), cooldown_sec=0)
    d = dict(run(seq.bars, base, "SPX"))[seq.expected]  # closes 10:32 < 15:00
    assert not d.fired and "POWER_HOUR_START=15:00" in d.reasons[0], d.reasons
    from datetime import time

    early = replace(base, power_hour_start=time(10, 32))
    assert [ts for ts, d in run(seq.bars, early, "SPX") if d.fired] == [seq.expected]
    later = replace(base, power_hour_start=time(10, 33))
    assert [ts for ts, d in run(seq.bars, later, "SPX") if d.fired] == []


def test_orb_only_inside_its_time_window(cfg):
    from datetime import time

    seq = sequences.orb()  # breakout bar closes at 10:16
    c = replace(cfg, enabled_setups=("ORB",), cooldown_sec=0)
    assert [ts for ts, d in run(seq.bars, replace(c, orb_end=time(10, 16))) if d.fired] == [
        seq.expected
    ]
    d = dict(run(seq.bars, replace(c, orb_end=time(10, 15))))[seq.expected]
    assert not d.fired
    window = "time_between(ORB_START, ORB_END) (ORB_START=10:00, ORB_END=10:15)"
    assert d.reasons == [f"not met: {window}"]


def test_thresholds_come_from_settings(settings):
    settings.HOD_FAIL_MIN_ATR = 0.75
    settings.ORB_BREAKOUT_ATR = 0.4
    settings.VWAP_COOLDOWN_SEC = 60
    cfg = StrategyConfig.from_settings()
    assert (cfg.hod_fail_min_atr, cfg.orb_breakout_atr, cfg.cooldown_sec) == (0.75, 0.4, 60)


def test_level_setup_repeats_only_after_the_cooldown(cfg):
    # the close stays under the band for 7 bars (then the trend turns down): 0, +5 min
    seq = sequences.sigma_fade(hold=True)
    c = replace(cfg, enabled_setups=("SIGMA_FADE",), cooldown_sec=300)
    fired = [ts for ts, d in run(seq.bars, c) if d.fired]
    assert fired == [seq.expected + timedelta(minutes=m) for m in (0, 5)]


def test_hod_fail_fires_once_per_fresh_high(cfg):
    """An event: the pullback that holds for 30 bars fires once (the level rule refired at
    every cooldown expiry); a new high that fails again fires again."""
    c = replace(cfg, enabled_setups=("HOD_FAIL",), cooldown_sec=0)
    held = sequences.hod_fail(hold=True)
    assert [ts for ts, d in run(held.bars, c) if d.fired] == [held.expected]
    again = sequences.hod_fail_twice()
    assert [ts for ts, d in run(again.bars, c) if d.fired] == again.expected_all


@pytest.mark.django_db
@pytest.mark.parametrize("setup", sorted(BUILDERS))
def test_live_path_journals_exactly_one_signal_on_the_built_bar(setup, settings):
    settings.ENABLED_SETUPS = [setup]
    seq = BUILDERS[setup]()
    bars_upsert(bars=seq.bars)
    for b in seq.bars:
        evaluate_bar(symbol="SPY", bar_ts=b.ts)
    assert list(Signal.objects.values_list("setup", "bar_ts")) == [(setup, seq.expected)]


@pytest.mark.django_db
def test_cooldown_survives_a_restart(settings):
    settings.ENABLED_SETUPS = ["SIGMA_FADE"]
    settings.VWAP_COOLDOWN_SEC = 300
    seq = sequences.sigma_fade(hold=True)
    bars_upsert(bars=seq.bars)
    cut = [b.ts for b in seq.bars].index(seq.expected) + 3
    for b in seq.bars[:cut]:
        evaluate_bar(symbol="SPY", bar_ts=b.ts)
    engines_reset()  # a worker restart: no in-process state survives
    for b in seq.bars[cut:]:
        evaluate_bar(symbol="SPY", bar_ts=b.ts)
    fired = list(Signal.objects.order_by("bar_ts").values_list("bar_ts", flat=True))
    assert fired == [seq.expected + timedelta(minutes=m) for m in (0, 5)]
