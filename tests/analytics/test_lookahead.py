"""The look-ahead check passes on every built-in setup and catches a planted setup (and a
planted feature) that peeks at the next bar, naming the bar."""

import re
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from django.conf import settings as dj_settings
from django.core.management import CommandError, call_command

from analytics.backtest.config import BacktestConfig
from analytics.backtest.runner import DataSpec
from analytics.lookahead import lookahead_check

BAR = timedelta(minutes=1)


@pytest.fixture
def spy_csv(tmp_path):
    """The first three sessions of the shared SPY file (pre/post-market bars included)."""
    from tests.conftest import shared_file

    frame = pd.read_csv(shared_file("data/SPY_1m_2011-01.csv"), dtype=str)
    days = frame["ts"].str[:10]
    path = tmp_path / "spy3.csv"
    frame[days.isin(sorted(days.unique())[:3])].to_csv(path, index=False)
    return str(path)


@pytest.fixture
def spy4_csv(tmp_path):
    """The first four sessions of the shared SPY file: every built-in setup fires in them
    (VWAP_MEAN first on 2011-01-06)."""
    from tests.conftest import shared_file

    frame = pd.read_csv(shared_file("data/SPY_1m_2011-01.csv"), dtype=str)
    days = frame["ts"].str[:10]
    path = tmp_path / "spy4.csv"
    frame[days.isin(sorted(days.unique())[:4])].to_csv(path, index=False)
    return str(path)


def _plant(monkeypatch, setup: str, peek) -> None:
    """Make `setup` fire only where `peek(close, next_close)` holds, in both fast-mode sources
    (the ledger engine's masks and the kernel's signal arrays)."""
    import analytics.backtest.fast as fast

    honest_masks, honest_signals = fast.setup_masks, fast.setup_signals

    def peeking(features, **kwargs):
        masks = honest_masks(features, **kwargs)
        close = features["close"].to_numpy(dtype=float)
        nxt = features["close"].shift(-1).to_numpy(dtype=float)
        masks[setup] = masks[setup] & peek(close, nxt)
        return masks

    def peeking_signals(features, cfg, *, symbol):
        arrays = honest_signals(features, cfg, symbol=symbol)
        if setup in arrays:
            fire = peeking(features, symbol=symbol, cfg=cfg)[setup]
            arrays[setup] = type(arrays[setup])(
                fire, *(getattr(arrays[setup], k) for k in ("stop", "t1", "t2"))
            )
        return arrays

    monkeypatch.setattr(fast, "setup_masks", peeking)
    monkeypatch.setattr(fast, "setup_signals", peeking_signals)


def _check(path, mode="fast", cuts=6, setups=None):
    config = BacktestConfig.from_settings(setups=setups or list(dj_settings.ALL_SETUPS))
    return lookahead_check(spec=DataSpec(path, ("SPY",)), config=config, mode=mode, cuts=cuts)


def test_every_built_in_setup_passes_in_fast_mode(spy_csv):
    report = _check(spy_csv)
    assert report.passed, report.first_difference
    kinds = {c.kind for c in report.cuts}
    assert {"after_signal", "inside_trade", "even"} <= kinds
    assert sum(c.decisions for c in report.cuts) > 0 and sum(c.fills for c in report.cuts) > 0


@pytest.mark.parametrize("setup", dj_settings.ALL_SETUPS)
def test_each_built_in_setup_passes_alone_and_its_peeking_variant_fails(
    spy4_csv, monkeypatch, setup
):
    """Checked alone, a setup's own signals place the after-signal cuts, so the pass means
    something for each of the seven: the same setup made to fire only when it can see the next
    bar (a subset of its fires) fails, naming its decision on the last bar before a cut."""
    report = _check(spy4_csv, setups=[setup], cuts=4)
    assert report.passed, report.first_difference
    after = [c for c in report.cuts if c.kind == "after_signal"]
    assert after and all(c.decisions > 0 for c in after), [c.kind for c in report.cuts]

    _plant(monkeypatch, setup, lambda close, nxt: np.isfinite(nxt))
    planted = _check(spy4_csv, setups=[setup], cuts=4)
    assert not planted.passed
    diff = planted.first_difference
    assert (diff["what"], diff["setup"]) == ("decision", setup)
    cut = next(c for c in planted.cuts if c.difference)
    assert pd.Timestamp(diff["bar"]) + BAR == pd.Timestamp(cut.cut)
    assert diff["with_future"] is not None and diff["without_future"] is None


def test_every_built_in_setup_passes_in_event_mode(spy_csv):
    report = _check(spy_csv, mode="event", cuts=3)
    assert report.passed, report.first_difference
    assert len(report.cuts) == 3


def test_a_planted_setup_that_peeks_at_the_next_bar_is_caught_naming_the_bar(spy_csv, monkeypatch):
    """A user's EMA_CROSS variant that fires only when the NEXT bar closes higher (a subset of
    the honest fires, so the fast path's mask-vs-setup guard does not object)."""
    _plant(monkeypatch, "EMA_CROSS", lambda close, nxt: nxt > close)
    report = _check(spy_csv, setups=["EMA_CROSS"])
    assert not report.passed
    diff = report.first_difference
    assert diff["what"] == "decision" and diff["setup"] == "EMA_CROSS"
    # the bar named is the last bar before a cut: with the future it fired, without it not
    cut = next(c for c in report.cuts if c.difference)
    assert pd.Timestamp(diff["bar"]) + BAR == pd.Timestamp(cut.cut)
    assert diff["with_future"] is not None and diff["without_future"] is None
    with pytest.raises(CommandError, match=re.escape(f"bar {diff['bar']} (SPY EMA_CROSS)")):
        call_command("backtest", data=spy_csv, symbol="SPY", lookahead_check=True,
                     setups="EMA_CROSS", cuts=6)  # fmt: skip


def test_a_planted_feature_computed_from_the_next_bar_is_caught_naming_the_bar(
    spy_csv, monkeypatch
):
    """A 'centred' EMA: the classic leak of a feature that includes the next close."""
    import strategies.features.vectorised as vectorised

    honest = vectorised.compute_features

    def centred(bars, **kwargs):
        out = honest(bars, **kwargs)
        out["ema_20"] = bars["close"].shift(-1).ewm(span=20, adjust=False).mean().to_numpy()
        return out

    monkeypatch.setattr(vectorised, "compute_features", centred)
    report = _check(spy_csv)
    assert not report.passed
    leaks = [(c, d) for c in report.cuts for d in c.differences if d["what"] == "feature"]
    assert leaks
    for cut, diff in leaks:
        assert diff["detail"] == "ema_20"
        # the leak shows on the last bar before the cut (its "next bar" was removed)
        assert pd.Timestamp(diff["bar"]) + BAR == pd.Timestamp(cut.cut)


def test_a_trade_open_at_the_cut_is_compared_only_when_the_truncated_run_lists_it():
    """The fast kernel lists closed trades only: a partially exited trade open at the cut is
    then absent from the truncated run, which is not a look-ahead."""
    from datetime import UTC, datetime

    from analytics.backtest.result import ExitLeg, TradeRecord
    from analytics.lookahead import _fills

    t0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)

    def trade(legs):
        exits = [ExitLeg(t0 + n * BAR, q, p, r) for n, q, p, r in legs]
        return TradeRecord("SPY", "SPY", "ORB", t0, t0 + BAR, 100.0, 10, 99.0, 101.0, 102.0, exits)

    class Result:
        trades = [trade([(3, 5, 101.0, "target_one"), (8, 5, 102.0, "target_two")])]

    cut = t0 + 5 * BAR  # after target one, before target two
    assert _fills(Result, cut, listed=set()) == {}
    listed = _fills(Result, cut, listed={("SPY", "ORB", t0)})
    assert set(listed) == {("SPY", "ORB", t0, "entry"), ("SPY", "ORB", t0, 0)}
    closed = _fills(Result, t0 + 9 * BAR, listed=set())  # closed before the cut: always
    assert len(closed) == 3
