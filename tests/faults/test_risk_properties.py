"""Hypothesis properties of the risk decision (sizing, the state machine and the bar builder
have theirs in tests/risk, tests/trading and tests/marketdata): an approval implies every
limit holds, and more exposure never turns a block into an approval."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from risk.config import RiskConfig
from risk.rules import evaluate
from risk.types import Exposure, Intent
from tests.faults.sizes import size

D = Decimal
SESSION = datetime(2025, 9, 17, 13, 31, tzinfo=UTC)  # Wed 09:31 EDT
SYMBOLS = ["SPY", "QQQ", "IWM"]
money = st.decimals(min_value=D("0"), max_value=D("5000"), places=2)

configs = st.builds(
    RiskConfig,
    risk_per_trade_usd=st.decimals(min_value=D("0"), max_value=D("2000"), places=2),
    max_concurrent=st.integers(0, 5),
    max_open_orders=st.integers(0, 6),
    max_positions_per_symbol=st.integers(0, 3),
    max_order_notional_usd=st.one_of(st.just(D("0")), money),
    max_daily_loss_usd=st.one_of(st.just(D("0")), money),
    min_cash_usd=st.one_of(st.just(D("0")), money),
)
exposures = st.builds(
    Exposure,
    open_trades=st.integers(0, 6),
    open_orders=st.integers(0, 7),
    trades_by_symbol=st.dictionaries(st.sampled_from(SYMBOLS), st.integers(0, 4), max_size=3),
    cash=st.one_of(st.none(), money),
    buying_power=st.one_of(st.none(), st.decimals(min_value=D("0"), max_value=D("1e6"), places=2)),
    day_pnl=st.decimals(min_value=D("-5000"), max_value=D("5000"), places=2),
    trading_state=st.sampled_from(["ACTIVE", "REDUCING", "HALTED"]),
)
intents = st.builds(
    lambda symbol, entry, frac, qty: Intent(
        symbol=symbol,
        entry_price=entry,
        stop_price=(entry * (1 - frac)).quantize(D("0.01")),
        qty=qty,
    ),
    st.sampled_from(SYMBOLS),
    st.decimals(min_value=D("1"), max_value=D("1000"), places=2),
    st.decimals(min_value=D("0.001"), max_value=D("0.2"), places=3),
    st.one_of(st.none(), st.integers(1, 500)),
)
minutes = st.integers(0, 60 * 6 + 20)


@settings(max_examples=size(200, 5000), deadline=None)
@given(intent=intents, exposure=exposures, config=configs, minute=minutes)
def test_an_approval_means_every_limit_holds(intent, exposure, config, minute):
    now = SESSION + timedelta(minutes=minute)
    decision = evaluate(intent, exposure, config, now)
    assert decision.approved == all(c.passed for c in decision.checks)
    if not decision.approved:
        return
    assert exposure.trading_state == "ACTIVE"
    assert exposure.open_trades < config.max_concurrent
    assert exposure.open_orders < config.max_open_orders
    if config.max_positions_per_symbol:
        held = exposure.trades_by_symbol.get(intent.symbol, 0)
        assert held < config.max_positions_per_symbol
    if config.max_daily_loss_usd:
        assert exposure.day_pnl > -config.max_daily_loss_usd
    if config.max_order_notional_usd:
        assert decision.notional <= config.max_order_notional_usd
    if config.min_cash_usd:
        assert exposure.cash is not None and exposure.cash >= config.min_cash_usd
    assert decision.qty >= 1
    if intent.qty is None and intent.stop_price is not None:  # risk-based size
        risk = decision.qty * (intent.entry_price - intent.stop_price)
        assert risk <= config.risk_per_trade_usd or decision.qty == 1


@settings(max_examples=size(200, 5000), deadline=None)
@given(
    intent=intents,
    exposure=exposures,
    config=configs,
    minute=minutes,
    more_trades=st.integers(0, 3),
    more_orders=st.integers(0, 3),
    more_loss=st.decimals(min_value=D("0"), max_value=D("3000"), places=2),
)
def test_more_exposure_never_turns_a_block_into_an_approval(
    intent, exposure, config, minute, more_trades, more_orders, more_loss
):
    now = SESSION + timedelta(minutes=minute)
    before = evaluate(intent, exposure, config, now)
    worse = replace(
        exposure,
        open_trades=exposure.open_trades + more_trades,
        open_orders=exposure.open_orders + more_orders,
        trades_by_symbol={
            **exposure.trades_by_symbol,
            intent.symbol: exposure.trades_by_symbol.get(intent.symbol, 0) + more_trades,
        },
        day_pnl=exposure.day_pnl - more_loss,
    )
    after = evaluate(intent, worse, config, now)
    if after.approved:
        assert before.approved
