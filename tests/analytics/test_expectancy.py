from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from analytics.expectancy import signals_replay
from marketdata.services import bars_upsert
from marketdata.types import BarData
from strategies.models import Signal

# 2024-03-04 is a Monday; 14:30 UTC = 09:30 ET.
OPEN = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def _bars(closes):
    out = []
    for i, close in enumerate(closes):
        o = closes[i - 1] if i else close
        out.append(
            BarData(
                "SPY",
                OPEN + timedelta(minutes=i),
                o,
                max(o, close) + 0.1,
                min(o, close) - 0.1,
                close,
                1000.0,
                source="replay",
            )  # fmt: skip
        )
    return out


@pytest.mark.django_db
def test_forward_return_mfe_mae_from_next_bar_open():
    closes = [100, 100, 101, 102, 101, 99, 100, 103, 104, 104]
    bars_upsert(bars=_bars(closes))
    Signal.objects.create(
        setup="EMA_CROSS", symbol="SPY", execution_symbol="SPY", bar_ts=OPEN + timedelta(minutes=1),
        stop_price=Decimal("99.0"),
    )  # fmt: skip
    result = signals_replay(limit=10, horizon=5)
    (row,) = result["outcomes"]
    # entry = open of bar 2 = close of bar 1 = 100; window bars 2..6, last close 100
    assert row["entry_price"] == 100.0
    assert row["bars"] == 5
    assert row["forward_return"] == pytest.approx(0.0)
    assert row["mfe"] == pytest.approx(102.1 / 100 - 1)
    assert row["mae"] == pytest.approx(98.9 / 100 - 1)
    assert row["r_multiple"] == pytest.approx(0.0)
    table = result["by_setup"]["EMA_CROSS"]
    assert table["signals"] == 1 and table["win_rate"] == 0.0


@pytest.mark.django_db
def test_expectancy_per_setup_with_interval(tmp_path):
    closes = [100 + (i % 7) * 0.5 for i in range(120)]
    bars_upsert(bars=_bars(closes))
    for minute in (3, 11, 16, 24, 30):
        Signal.objects.create(
            setup="ORB", symbol="SPY", execution_symbol="SPY",
            bar_ts=OPEN + timedelta(minutes=minute),
        )  # fmt: skip
    Signal.objects.create(
        setup="VWAP_MEAN", symbol="SPY", execution_symbol="SPY",
        bar_ts=OPEN + timedelta(minutes=119),
    )  # fmt: skip
    out = tmp_path / "replay.json"
    call_command("replay_signals", limit=200, horizon=3, json_out=str(out))
    result = signals_replay(limit=200, horizon=3)
    orb = result["by_setup"]["ORB"]
    assert orb["signals"] == 5
    # bars 4..6 after minute 3: entry = close[3] = 101.5, last close = close[6] = 103
    first = result["outcomes"][0]
    assert first["forward_return"] == pytest.approx(103 / 101.5 - 1)
    assert orb["ci_t"]["low"] <= orb["expectancy"] <= orb["ci_t"]["high"]
    # the last signal has no bar after it: counted, not evaluated, never a crash
    assert result["signals"] == 6 and result["evaluated"] == 5
    assert "VWAP_MEAN" not in result["by_setup"]
    assert out.exists()
