"""A trader's own setups: one added only as a file in SETUPS_DIR and one only in the admin/API
each fire in a replay session, reach the journal with their version, and backtest to the same
trades in event and fast mode; a malformed definition is reported and never stops the engine."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest

from analytics.backtest.config import BacktestConfig
from analytics.backtest.event import run_event
from analytics.backtest.fast import run_fast
from analytics.bars import bars_frame_from_csv
from marketdata.replay import replay_bars
from strategies.models import SetupAudit, Signal
from strategies.setups.definition import version_of
from strategies.setups.registry import setup_get, setups_broken, setups_changed
from tests.conftest import shared_file
from tests.strategies.test_real_sessions import load_bars

FILE_SETUP = """\
# a trader's file: reclaim of vwap with a rising 20-bar EMA
name: MY_RECLAIM
description: close crossed above vwap while ema_20 rises
condition: crosses_above(close, vwap) and rising(ema_20, 3) and rvol >= min_rvol
params: {min_rvol: 0.8}
"""
ADMIN_SETUP = """\
name: RSI_DIP
condition: |
  rsi_14 < 35 and close > prior_day_low
  and time_between("10:00", "15:00")
stop: vwap - 2 * atr_14
target_one: vwap
cooldown_sec: 1800
"""
BROKEN = "name: BROKEN_ONE\ncondition: rvol >= 1.2 and crosses_abov(close, vwap)\n"


@pytest.fixture
def setups_dir(tmp_path, settings):
    folder = tmp_path / "setups"
    folder.mkdir()
    settings.SETUPS_DIR = str(folder)
    setups_changed()
    yield folder
    settings.SETUPS_DIR = ""
    setups_changed()


def _two_sessions():
    return [b for b in load_bars("data/SPY_1m_2011-01.csv") if b.ts.day in (3, 4)]


def _journal(settings) -> list[dict]:
    return [json.loads(line) for line in open(settings.EVENTS_JOURNAL)]


def _spy_frames():
    frame = bars_frame_from_csv(shared_file("data/SPY_1m_2011-01.csv"))
    return {"SPY": frame}


@pytest.mark.django_db(transaction=True)
def test_file_setup_fires_in_replay_and_is_journaled_with_its_version(setups_dir, settings):
    (setups_dir / "my_reclaim.yaml").write_text(FILE_SETUP)
    (setups_dir / "broken.yaml").write_text(BROKEN)
    setups_changed()
    entry = setup_get("MY_RECLAIM")
    assert (entry.kind, entry.mode, entry.version) == ("file", "paper", version_of(FILE_SETUP))
    (broken,) = setups_broken()
    assert (broken.line, broken.column) == (2, 28) and "crosses_abov" in broken.error

    settings.ENABLED_SETUPS = ["EMA_CROSS"]  # a built-in keeps running next to the broken file
    replay_bars(_two_sessions())
    mine = Signal.objects.filter(setup="MY_RECLAIM")
    assert mine.exists()
    assert set(mine.values_list("setup_version", flat=True)) == {entry.version}
    assert Signal.objects.filter(setup="EMA_CROSS").exists()
    assert mine.filter(outcome__in=("dry_run", "risk_blocked")).count() == mine.count()
    events = [e for e in _journal(settings) if e.get("setup") == "MY_RECLAIM"]
    assert events and {e["setup_version"] for e in events if e["event"] == "signal"} == {
        entry.version
    }


@pytest.mark.django_db(transaction=True)
def test_admin_setup_fires_in_replay_with_its_version_and_paper_until_approved(settings):
    from django.contrib.auth.models import Permission, User

    from strategies.setup_services import setup_go_live, user_setup_save

    settings.ENABLED_SETUPS = []
    row = user_setup_save(text=ADMIN_SETUP, actor="alice")
    assert setup_get("RSI_DIP").mode == "paper"
    replay_bars(_two_sessions())
    fired = Signal.objects.filter(setup="RSI_DIP")
    assert fired.exists() and set(fired.values_list("setup_version", flat=True)) == {row.version}
    # the definition's own cooldown (1800 s) holds between its signals
    times = sorted(fired.values_list("bar_ts", flat=True))
    assert all((b - a).total_seconds() >= 1800 for a, b in zip(times, times[1:], strict=False))

    trader = User.objects.create_user("bob")
    trader.user_permissions.add(Permission.objects.get(codename="can_trade"))
    setup_go_live(name="RSI_DIP", version=row.version, user=trader)
    assert setup_get("RSI_DIP").mode == "live"
    user_setup_save(text=ADMIN_SETUP.replace("rsi_14 < 35", "rsi_14 < 30"), actor="alice")
    assert setup_get("RSI_DIP").mode == "paper"  # an edit needs a new approval
    actions = list(SetupAudit.objects.filter(setup="RSI_DIP").values_list("action", flat=True))
    assert sorted(actions) == ["created", "edited", "live"]


@pytest.mark.django_db
def test_paper_mode_signal_is_routed_to_the_paper_book_while_trading_live(settings):
    from marketdata.services import bars_upsert
    from strategies.services import evaluate_bar
    from strategies.setup_services import user_setup_save

    settings.ENABLED_SETUPS = []
    user_setup_save(text=ADMIN_SETUP, actor="alice")
    bars = _two_sessions()
    bars_upsert(bars=bars)
    settings.DRY_RUN = False
    handed_over = [s for b in bars for s in evaluate_bar(symbol="SPY", bar_ts=b.ts)]
    stored = Signal.objects.filter(setup="RSI_DIP")
    assert handed_over and len(handed_over) == stored.count()
    # trading decides them on the paper book (tests/trading/test_paper_book.py), never the account
    assert set(stored.values_list("book", "outcome")) == {("paper", "generated")}
    paper_checks = [c for s in stored for c in s.checks if c["code"] == "SETUP_PAPER_MODE"]
    assert len(paper_checks) == stored.count() and all(c["passed"] for c in paper_checks)


@pytest.mark.django_db
def test_user_setups_backtest_to_identical_trades_in_event_and_fast_mode(setups_dir):
    from strategies.setup_services import user_setup_save

    (setups_dir / "my_reclaim.yaml").write_text(FILE_SETUP)
    # RSI_DIP keeps its own cooldown_sec (1800 s, not VWAP_COOLDOWN_SEC): both backtest modes
    # must honour it as the live path does
    user_setup_save(text=ADMIN_SETUP, actor="alice")
    frames = _spy_frames()
    base = BacktestConfig.from_settings()
    # "auto" is the integer kernel when the configuration allows it (with the default money-safety
    # rules it falls back to the ledger pass), "ledger" the in-memory ledger over fired bars
    for name, engines in (("MY_RECLAIM", ("auto", "ledger")), ("RSI_DIP", ("auto", "ledger"))):
        config = replace(base, strategy=replace(base.strategy, enabled_setups=(name,)))
        event = run_event(frames, config, symbols=["SPY"])
        assert len(event.closed_trades()) >= 5, name
        for engine in engines:
            fast = run_fast(frames, config, symbols=["SPY"], engine=engine)
            assert [t.key() for t in fast.closed_trades()] == [
                t.key() for t in event.closed_trades()
            ], (name, engine)
            assert [s.key() for s in fast.signals] == [s.key() for s in event.signals]
        cooldown = 1800 if name == "RSI_DIP" else base.strategy.cooldown_sec
        fired = sorted(s.bar_ts for s in event.signals)
        assert len(fired) >= 5, name
        gaps = [(b - a).total_seconds() for a, b in zip(fired, fired[1:], strict=False)]
        assert min(gaps) >= cooldown, (name, min(gaps))


def test_setups_check_command_exits_2_with_line_and_column(tmp_path, capsys):
    from django.core.management import call_command

    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN)
    with pytest.raises(SystemExit) as exit_info:
        call_command("setups", "check", str(bad))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:28:" in err and "unknown function 'crosses_abov'" in err
    good = tmp_path / "good.yaml"
    good.write_text(FILE_SETUP)
    call_command("setups", "check", str(good))
    assert "MY_RECLAIM version" in capsys.readouterr().out


@pytest.mark.django_db
def test_setups_list_shows_source_version_enabled_and_mode(setups_dir, capsys):
    from django.core.management import call_command

    (setups_dir / "my_reclaim.yaml").write_text(FILE_SETUP)
    (setups_dir / "broken.yaml").write_text(BROKEN)
    setups_changed()
    call_command("setups", "list")
    out = capsys.readouterr().out.splitlines()
    mine = next(line for line in out if line.startswith("MY_RECLAIM"))
    assert str(setups_dir / "my_reclaim.yaml") in mine and version_of(FILE_SETUP) in mine
    assert mine.split()[-2:] == ["yes", "paper"]
    assert any(line.startswith("HOD_FAIL") and line.split()[-1] == "live" for line in out)
    assert any("NOT LOADED" in line and "line 2, column 28" in line for line in out)


def test_changed_file_is_picked_up_without_a_restart(setups_dir, monkeypatch):
    from strategies.setups import registry

    path = setups_dir / "my_reclaim.yaml"
    path.write_text(FILE_SETUP)
    setups_changed()
    first = setup_get("MY_RECLAIM").version
    monkeypatch.setattr(registry, "RECHECK_SEC", 0.0)  # stat the folder on every read
    path.write_text(FILE_SETUP.replace("0.8", "0.85"))  # no explicit invalidation
    assert setup_get("MY_RECLAIM").version == version_of(FILE_SETUP.replace("0.8", "0.85"))
    assert first != setup_get("MY_RECLAIM").version
    path.unlink()
    assert setup_get("MY_RECLAIM") is None


def test_backtest_command_accepts_a_file_setup(setups_dir, tmp_path):
    from django.core.management import call_command

    (setups_dir / "my_reclaim.yaml").write_text(FILE_SETUP)
    setups_changed()
    out = tmp_path / "r.json"
    csv = shared_file("data/SPY_1m_2011-01.csv")
    call_command("backtest", data=str(csv), symbol="SPY", setups="MY_RECLAIM",
                 json_out=str(out), no_progress=True)  # fmt: skip
    body = json.loads(out.read_text())
    assert body["trades"] and {t["setup"] for t in body["trades"]} == {"MY_RECLAIM"}


def test_plugins_need_both_evaluators(tmp_path, settings):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "inside_bar.py").write_text(
        "import numpy as np\n"
        "from strategies.setups.plugins import SetupPlugin\n\n"
        "class InsideBar(SetupPlugin):\n"
        "    name = 'INSIDE_BAR'\n"
        "    features = ('high', 'low', 'close', 'atr_14')\n\n"
        "    def bar_evaluator(self, symbol, cfg):\n"
        "        prev = {}\n"
        "        def step(row):\n"
        "            hit = prev and row['high'] < prev['h'] and row['low'] > prev['l']\n"
        "            prev.update(h=row['high'], l=row['low'])\n"
        "            return (row['low'], row['close'] + row['atr_14'], row['close'] + 2 * row['atr_14']) if hit else None\n"  # noqa: E501
        "        return step\n\n"
        "    def vectorised(self, cols, cfg):\n"
        "        h, lo, c, a = (cols.data[k] for k in ('high', 'low', 'close', 'atr_14'))\n"
        "        ph, pl = np.r_[np.nan, h[:-1]], np.r_[np.nan, lo[:-1]]\n"
        "        return {'fire': (h < ph) & (lo > pl), 'stop': lo, 'target_one': c + a,\n"
        "                'target_two': c + 2 * a}\n\n"
        "class HalfDone(SetupPlugin):\n"
        "    name = 'HALF_DONE'\n"
        "    def bar_evaluator(self, symbol, cfg):\n"
        "        return lambda row: None\n"
    )
    settings.SETUP_PLUGINS_DIR = str(folder)
    setups_changed()
    try:
        assert setup_get("INSIDE_BAR").kind == "plugin"
        assert setup_get("HALF_DONE") is None
        (half,) = [e for e in setups_broken() if e.name == "HALF_DONE"]
        assert "vectorised" in half.error
        frames = _spy_frames()
        base = BacktestConfig.from_settings()
        config = replace(base, strategy=replace(base.strategy, enabled_setups=("INSIDE_BAR",)))
        event = run_event(frames, config, symbols=["SPY"])
        assert event.closed_trades()
        from analytics.backtest.vector_setups import setup_signals
        from strategies.features import compute_features

        feats = compute_features(frames["SPY"][["open", "high", "low", "close", "volume"]])
        fire = setup_signals(feats, config, symbol="SPY")["INSIDE_BAR"].fire
        fired_event = {s.bar_ts for s in event.signals}
        assert set(pd.DatetimeIndex(feats.index[fire]).to_pydatetime()) >= fired_event
    finally:
        settings.SETUP_PLUGINS_DIR = ""
        setups_changed()
