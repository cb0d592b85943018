import math
from datetime import date

from analytics.statistics import (
    bootstrap_confidence_interval,
    max_drawdown,
    mean_confidence_interval,
    sharpe_of_daily,
    trade_stats,
)


def test_max_drawdown_counts_a_first_losing_trade_from_zero():
    assert max_drawdown([-10.0, 5.0]) == 10.0


def test_max_drawdown_is_the_largest_peak_to_trough_fall():
    # equity 0, 10, 4, 12, 2, 7 -> worst fall 12 -> 2
    assert max_drawdown([10, -6, 8, -10, 5]) == 10.0


def test_trade_stats_win_rate_expectancy_profit_factor():
    stats = trade_stats([30.0, -10.0, -10.0, 50.0])
    assert stats.trades == 4
    assert stats.wins == 2 and stats.losses == 2
    assert stats.win_rate == 0.5
    assert stats.expectancy == 15.0
    assert stats.profit_factor == 4.0
    assert stats.avg_win == 40.0 and stats.avg_loss == -10.0


def test_profit_factor_without_losses_is_unbounded_and_reported_as_null():
    stats = trade_stats([5.0, 7.0])
    assert stats.profit_factor == math.inf
    assert stats.as_dict()["profit_factor"] is None


def test_empty_trade_list_has_no_rates():
    stats = trade_stats([])
    assert stats.trades == 0 and stats.win_rate is None and stats.expectancy is None
    assert stats.max_drawdown == 0.0


def test_sharpe_of_daily_pnl_is_annualised_mean_over_std():
    daily = [1.0, 2.0, 3.0]
    assert math.isclose(sharpe_of_daily(daily), 2.0 / 1.0 * math.sqrt(252))
    assert sharpe_of_daily([1.0]) is None
    assert sharpe_of_daily([2.0, 2.0]) is None


def test_trade_stats_sharpe_includes_days_without_trades():
    days = [date(2024, 1, 2), date(2024, 1, 2), date(2024, 1, 3)]
    with_gap = trade_stats(
        [10.0, -5.0, 10.0],
        days=days,
        all_days=[date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)],
    )
    without = trade_stats([10.0, -5.0, 10.0], days=days)
    assert without.sharpe_daily is not None and without.sharpe_daily != with_gap.sharpe_daily
    # daily totals 5, 10, 0 -> mean 5, std 5
    assert math.isclose(with_gap.sharpe_daily, 1.0 * math.sqrt(252))


def test_confidence_intervals_bracket_the_mean():
    values = [0.01, -0.02, 0.03, 0.015, -0.005, 0.02]
    mean = sum(values) / len(values)
    t = mean_confidence_interval(values)
    b = bootstrap_confidence_interval(values)
    assert t.low < mean < t.high
    assert b.low < mean < b.high
    assert b == bootstrap_confidence_interval(values)  # seeded: reproducible
    assert mean_confidence_interval([1.0]).low is None
