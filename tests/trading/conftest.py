"""Fixtures for the trading tests: a fresh paper broker, a fake Tradier, a risk config, the
bars given their full step."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from risk.config import RiskConfig
from risk.costs import CostModel
from trading.brokers import broker_override
from trading.brokers.paper import PaperBroker
from trading.core.fills import FillCosts


@pytest.fixture
def paper():
    # 2 bps adverse on a market fill: 1 bp (half the spread) + 1 bp slippage
    model = CostModel(slippage_bps=Decimal("1"), spread_bps=Decimal("2"))
    broker = PaperBroker(costs=FillCosts(model=model))
    broker_override(broker)
    yield broker
    broker_override(None)


@pytest.fixture
def fake_tradier():
    from tests.trading.fake_tradier import FakeTradier

    fake = FakeTradier()
    broker = fake.tradier_broker(submit_attempts=4)
    fake.broker = broker
    broker_override(broker)
    yield fake
    broker_override(None)


@pytest.fixture
def config():
    return RiskConfig(risk_per_trade_usd=Decimal("100"), max_concurrent=3, max_open_orders=5)


# A regular session day (Wednesday 2025-09-17) and times in UTC (EDT = UTC-4).
def at(hh: int, mm: int, day: int = 17, month: int = 9, year: int = 2025) -> datetime:
    return datetime(year, month, day, hh, mm, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_feature_engines():
    """The strategy engine caches one feature engine per symbol per process: start clean."""
    from strategies.feature_store import engines_reset

    engines_reset()
    yield
    engines_reset()


@pytest.fixture
def steps(monkeypatch):
    """(symbol, ts) of every bar given its full step (`pipeline.process_bar_close`), in order;
    the quiet bars a batch claims without it are not in it (`trading.bar_batch`)."""
    from trading import pipeline

    seen: list[tuple[str, datetime]] = []
    real = pipeline.process_bar_close

    def spy(*, bar, **kwargs):
        seen.append((bar.symbol, bar.ts))
        return real(bar=bar, **kwargs)

    monkeypatch.setattr(pipeline, "process_bar_close", spy)
    return seen
