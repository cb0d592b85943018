"""The per-symbol cost model: fills worsened by half the spread plus slippage, fees on sales,
per-symbol overrides over the settings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from risk.config import RiskConfig, symbol_params
from risk.costs import CostModel, cost_model_from_settings

D = Decimal
SPY = CostModel(
    spread_usd=D("0.01"),
    slippage_usd=D("0.005"),
    sec_fee_per_million=D("27.80"),
    taf_per_share_usd=D("0.000166"),
    taf_max_usd=D("8.30"),
)


def test_market_orders_pay_half_the_spread_plus_slippage_rounded_against_the_trader():
    assert SPY.market_fill("buy", D("130.00")) == D("130.01")  # 130 + 0.005 + 0.005
    assert SPY.market_fill("sell", D("130.00")) == D("129.99")
    # a half-cent mid: the buy rounds up, the sell down
    assert SPY.market_fill("buy", D("130.005")) == D("130.02")
    assert SPY.market_fill("sell", D("130.005")) == D("129.99")


def test_sales_pay_sec_fee_and_taf_rounded_up_purchases_none():
    # 500 shares sold at 130: SEC 65,000 x 27.80 / 1e6 = 1.807 -> 1.81; TAF 500 x 0.000166
    # = 0.083 -> 0.09
    assert SPY.fees("sell", 500, D("130")) == D("1.81") + D("0.09")
    assert SPY.fees("buy", 500, D("130")) == D("0")


def test_taf_is_capped_per_order():
    # 100,000 shares x 0.000166 = 16.60 > the 8.30 cap
    assert SPY.regulatory_fees("sell", 100_000, D("1")) == D("2.78") + D("8.30")


def test_commissions_per_share_and_per_order():
    costs = CostModel(commission_per_share_usd=D("0.0035"), commission_per_order_usd=D("1"))
    assert costs.fees("buy", 200, D("50")) == D("1.70")  # 1 + 200 x 0.0035
    assert costs.commission(0) == D("0")


def test_round_trip_per_share_of_the_spy_defaults_is_about_two_cents():
    # spread 0.01 + 2 x 0.005 slippage + SEC 130 x 27.80e-6 + TAF 0.000166
    assert SPY.round_trip_per_share(D("130")) == D("0.01") + D("0.01") + D("0.003614") + D(
        "0.000166"
    )


def test_settings_defaults_are_the_documented_spy_model(settings):
    model = cost_model_from_settings()
    assert model.spread_usd == D("0.01") and model.slippage_usd == D("0.005")
    assert model.commission_per_share_usd == 0 and model.commission_per_order_usd == 0
    assert model.sec_fee_per_million == D("27.80") and model.taf_max_usd == D("8.30")


class _Row:
    enabled = True
    spread_usd = D("0.05")
    slippage_usd = None
    commission_per_order_usd = D("1.00")
    min_stop_ticks = 20


@pytest.mark.parametrize("row", [None, _Row()])
def test_symbol_override_replaces_only_what_it_sets(row):
    config = RiskConfig(costs=SPY, min_stop_ticks=5)
    params = symbol_params("TSLA", config, row)
    if row is None:
        assert params.costs == SPY and params.min_stop_ticks == 5
    else:
        assert params.costs.spread_usd == D("0.05")
        assert params.costs.slippage_usd == SPY.slippage_usd  # not set on the row
        assert params.costs.commission_per_order_usd == D("1.00")
        assert params.min_stop_ticks == 20
        assert params.sources["spread_usd"] == "override"
