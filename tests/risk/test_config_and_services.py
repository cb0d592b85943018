"""Per-symbol overrides (admin row > env > defaults), start-up validation, effective config,
the audited trading state and the risk preview."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from risk.config import RiskConfig, parse_symbol_env_overrides, symbol_params
from risk.models import SymbolOverride, TradingStateChange
from risk.selectors import effective_config, trading_state_get
from risk.services import decision_lock, risk_preview, trading_state_set

D = Decimal
NOON = datetime(2025, 9, 17, 16, 0, tzinfo=UTC)


def test_env_overrides_are_parsed_and_global_names_are_not_symbols():
    env = {
        "QTY_AAPL": "2",
        "STOP_AAPL": "0.0125",
        "TP_AAPL": "0.02",
        "TRAIL_AAPL": "0.01",
        "TRAIL_ACT_AAPL": "0.015",
        "STOP_PCT": "0.01",
        "TRAIL_ACT_PCT": "0.01",
        "HOME": "/root",
    }
    parsed = parse_symbol_env_overrides(env)
    assert set(parsed) == {"AAPL"}
    aapl = parsed["AAPL"]
    assert (aapl.qty, aapl.stop_pct, aapl.tp_pct, aapl.trail_pct, aapl.trail_act_pct) == (
        2,
        D("0.0125"),
        D("0.02"),
        D("0.01"),
        D("0.015"),
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QTY_AAPL", "two"),
        ("QTY_AAPL", "0"),
        ("STOP_AAPL", "1.5"),
        ("TP_AAPL", "-1"),
        ("TRAIL_AAPL", "abc"),
    ],
)
def test_a_bad_env_override_stops_start_up_naming_the_variable(name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        parse_symbol_env_overrides({name: value})


def test_precedence_row_then_env_then_default():
    config = RiskConfig(
        stop_pct=D("0.01"),
        symbol_env=parse_symbol_env_overrides({"STOP_AAPL": "0.02", "QTY_AAPL": "3"}),
    )
    row = SymbolOverride(symbol="AAPL", stop_pct=D("0.03"))
    params = symbol_params("AAPL", config, row)
    assert params.stop_pct == D("0.03") and params.sources["stop_pct"] == "override"
    assert params.qty == 3 and params.sources["qty"] == "env"
    assert symbol_params("AAPL", config).stop_pct == D("0.02")
    assert symbol_params("MSFT", config).stop_pct == D("0.01")
    assert symbol_params("MSFT", config).sources["stop_pct"] == "default"


@pytest.mark.django_db
def test_effective_config_reports_each_value_with_its_source():
    SymbolOverride.objects.create(symbol="AAPL", qty=4, enabled=False)
    config = RiskConfig(symbol_env=parse_symbol_env_overrides({"TP_AAPL": "0.05"}))
    out = effective_config(symbol="aapl", config=config)
    values = out["values"]
    assert out["symbol"] == "AAPL"
    assert values["qty"] == {"value": 4, "source": "override"}
    assert values["enabled"] == {"value": False, "source": "override"}
    assert values["tp_pct"] == {"value": "0.05", "source": "env"}
    assert values["stop_pct"]["source"] == "default"
    assert values["max_concurrent"]["source"] == "settings"


@pytest.mark.django_db
def test_trading_state_changes_are_audited_and_validated():
    user = get_user_model().objects.create_user("ops", password="x")
    assert trading_state_get().state == "ACTIVE"
    trading_state_set(state="halted", reason="news", user=user)
    trading_state_set(state="HALTED", reason="news", user=user)  # no change: not recorded twice
    trading_state_set(state="ACTIVE", reason="resume", actor="job")
    changes = list(TradingStateChange.objects.order_by("at", "id"))
    assert [(c.from_state, c.to_state, c.actor) for c in changes] == [
        ("ACTIVE", "HALTED", "ops"),
        ("HALTED", "ACTIVE", "job"),
    ]
    assert changes[0].changed_by == user
    with pytest.raises(ValueError):
        trading_state_set(state="PAUSED")


@pytest.mark.django_db
def test_risk_preview_explains_every_block():
    trading_state_set(state="HALTED", reason="test")
    out = risk_preview(symbol="spy", qty=10, price="450", now=NOON)
    assert out["approved"] is False
    assert "TRADING_HALTED" in out["reasons"]
    # priced at the expected fill: 450 + half the 0.01 spread + 0.005 slippage = 450.01
    assert out["notional"] == "4500.10"
    assert out["qty"] == 10


@pytest.mark.django_db
def test_risk_preview_without_price_or_bars_says_so():
    out = risk_preview(symbol="ZZZ", qty=1, now=NOON)
    assert out["reasons"] == ["NO_PRICE"]


@pytest.mark.django_db(transaction=True)
def test_decision_lock_is_a_transaction_with_an_advisory_lock():
    from django.db import connection

    with decision_lock():
        assert connection.in_atomic_block
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            assert cursor.fetchone()[0] >= 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db
def test_risk_preview_sizes_from_the_stop_or_falls_back_to_order_qty(settings):
    settings.ORDER_QTY = 3
    settings.RISK_MAX_ORDER_NOTIONAL_PCT = 0  # let the risk budget, not the cap, size it
    settings.RISK_MAX_SYMBOL_EXPOSURE_PCT = 0
    assert risk_preview(symbol="SPY", price="450", now=NOON)["qty"] == 3
    sized = risk_preview(symbol="SPY", price="450", stop_price="449.50", now=NOON)
    # fill 450.01, stop fills at 449.49: 0.52 a share + SEC fee (27.80 per million of
    # 449.49) + TAF 0.000166 = 0.53266 -> 187 shares lose 97.24 + 2.34 + 0.04 = 99.62;
    # 188 would lose 97.76 + 2.35 + 0.04 = 100.15 > 100
    assert sized["qty"] == 187 and sized["approved"]
