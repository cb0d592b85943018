"""The setup language: clear errors (line, column, the unknown name), the semantics of each
function worked out by hand, and the per-bar evaluator equal to the vectorised one bar for bar
on a real SPY month for expressions using every function."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.backtest.vector_setups import setup_columns
from strategies.config import StrategyConfig
from strategies.dsl.ast import SetupError
from strategies.dsl.compiler import compile_expr
from strategies.dsl.functions import BOOL, NUM, Columns
from strategies.evaluation import SetupRunner
from strategies.features import FeatureEngine, compute_features
from strategies.features.library import FeatureLibrary
from strategies.setups.definition import parse_definition, setting_constants
from tests.conftest import shared_file

CONSTS = setting_constants(StrategyConfig())


def error_of(text: str) -> SetupError:
    with pytest.raises(SetupError) as info:
        parse_definition(text)
    return info.value


def test_unknown_name_error_names_line_column_and_suggests():
    err = error_of("name: X\ncondition: |\n  rvol >= 1.2\n  and crosses_above(close, vwapp)\n")
    assert (err.line, err.column) == (4, 28)
    assert "unknown name 'vwapp'" in err.message and "vwap" in err.message


def test_syntax_error_positions_and_no_python():
    err = error_of('name: X\ncondition: "rvol >= 1.2 and (close > vwap"\n')
    assert err.line == 2 and "ends too early" in err.message
    err = error_of("name: X\ncondition: __import__('os')\n")
    assert "unknown function '__import__'" in err.message
    err = error_of("name: X\ncondition: close.real > 1\n")
    assert (err.line, err.column) == (2, 17) and "unexpected character '.'" in err.message


@pytest.mark.parametrize(("text", "message"), [
    ("name: X\ncondition: rvol + 1\n", "a bool is needed"),
    ("name: X\ncondition: rvol and close\n", "'and' needs a bool"),
    ("name: X\ncondition: rising(close, 2.5)\n", "whole number"),
    ("name: X\ncondition: rising(close, rvol)\n", "needs a constant"),
    ("name: X\ncondition: close > 1\nstop: prev(low)\n", "history functions"),
    ("name: x\ncondition: close > 1\n", "UPPER_CASE"),
    ("name: X\n", "condition is required"),
    ("name: X\ncondition: close > 1\ncooldown: 5\n", "unknown key 'cooldown'"),
    ("name: X\ncondition: time_between(\"25:00\", \"14:00\")\n", "not a time"),
    ("name: X\ncondition: close > 1\nparams: {VWAP_MIN_RVOL: 1}\n", "lower_case"),
    ("name: X\ncondition: [\n", "YAML"),
])  # fmt: skip
def test_malformed_definitions_say_what_is_wrong(text, message):
    assert message in str(error_of(text))


def _cols(values: dict, sessions: list[int], minutes=None) -> Columns:
    n = len(sessions)
    data = {k: np.asarray(v, dtype=float) for k, v in values.items()}
    data["minute"] = np.asarray(minutes if minutes is not None else range(n), dtype=float)
    return Columns(data, np.asarray(sessions), 571 + data["minute"].astype(int), "SPY")


def both(text: str, values: dict, sessions: list[int], want=BOOL, minutes=None):
    """(per-bar results, vectorised results) of `text` over hand-made rows."""
    expr = compile_expr(text, constants=CONSTS, want=want)
    cols = _cols(values, sessions, minutes)
    step = expr.bar("SPY")
    days = [date(2024, 1, 1) + timedelta(days=s) for s in sessions]
    per_bar = []
    for k in range(len(sessions)):
        row = {name: float(v[k]) for name, v in cols.data.items()}
        row["session_date"] = days[k]
        per_bar.append(step(row))
    return per_bar, list(expr.vec(cols))


def test_crosses_above_within_the_session_only():
    a = [1, 2, 3, 1, 3, 3]
    b = [2, 2, 2, 2, 2, 2]
    per_bar, vec = both("crosses_above(close, vwap)", {"close": a, "vwap": b}, [0, 0, 0, 1, 1, 1])
    # bar 2: 2 <= 2 and 3 > 2; bar 4 is a cross inside session 1; bar 3 opens session 1
    assert per_bar == vec == [False, False, True, False, True, False]


def test_prev_rising_bars_since_becomes_first_since_by_hand():
    close = [1, 2, 3, 2, 5, 6, 7]
    sess = [0, 0, 0, 0, 0, 1, 1]
    p, v = both("prev(close, 2)", {"close": close}, sess, want=NUM)
    assert np.allclose(p, v, equal_nan=True)
    assert np.allclose(p, [np.nan, np.nan, 1, 2, 3, np.nan, np.nan], equal_nan=True)
    p, v = both("rising(close, 2)", {"close": close}, sess)
    assert p == v == [False, False, True, False, True, False, False]
    p, v = both("bars_since(close >= 3)", {"close": close}, sess, want=NUM)
    assert np.allclose(p, v, equal_nan=True)
    assert np.allclose(p, [np.nan, np.nan, 0, 1, 0, 0, 0], equal_nan=True)
    p, v = both("becomes(close >= 3)", {"close": close}, sess)
    assert p == v == [False, False, True, False, True, False, False]
    # the first bar with close < 3 after each close >= 5 ("event") in the session
    vals = {"close": [5, 2, 1, 6, 7, 2, 2, 9, 1]}
    p, v = both("first_since(close < 3, close >= 5)", vals, [0] * 9)
    assert p == v == [False, True, False, False, False, True, False, False, True]


def test_time_functions_use_the_bar_close_in_new_york():
    # minute 29 starts 09:59 and closes 10:00
    p, v = both('time_between("10:00", "10:01")', {"close": [1, 1, 1, 1]}, [0] * 4,
                minutes=[28, 29, 30, 31])  # fmt: skip
    assert p == v == [False, True, True, False]
    p, v = both('after("10:01") or before("09:59")', {"close": [1] * 4}, [0] * 4,
                minutes=[26, 28, 30, 31])  # fmt: skip
    assert p == v == [True, False, True, True]


def test_arithmetic_chains_and_division_by_zero_agree():
    vals = {"close": [1, 0, -1, 2], "vwap": [0, 0, 0, 1]}
    p, v = both("close / vwap", vals, [0] * 4, want=NUM)
    assert np.allclose(p, v, equal_nan=True) and np.isinf(p[0]) and np.isnan(p[1])
    p, v = both("0 <= close < vwap + 1 and not close == 2", vals, [0] * 4)
    assert p == v == [False, True, False, False]


EXPRESSIONS = [
    "crosses_above(close, vwap) and rvol >= 1.2",
    "rising(ema_20, 5) and bars_since(new_high) <= 3",
    "crosses_below(rsi_14, 30) or (stoch_k_14 < 20 and stoch_k_14 > stoch_d_14)",
    "first_since(close < vwap_lower_1, new_low) and adx_14 > 20",
    "becomes(macd > macd_signal) and close > ema5m_9",
    'time_between("10:00", "14:00") and close > prior_day_high and opening_gap > 0',
    "close >= highest_20 and prev(close, 3) < bb_mid_20 and abs(vwap_slope) < 0.01",
    "falling(sma15m_4, 2) and min(close, open) > lowest_20 and max(low, premarket_low) > 0",
    "bars_since(crosses_above(close, vwap)) == 2 and close > prev(high)",
]


@pytest.mark.parametrize("condition", EXPRESSIONS)
def test_per_bar_equals_vectorised_on_a_real_month(condition):
    df = pd.read_csv(shared_file("data/SPY_1m_2011-01.csv"))
    df.index = pd.to_datetime(df.pop("ts"), utc=True)
    definition = parse_definition(f"name: T\ncondition: '{condition}'\n")
    prog = definition.program(StrategyConfig())
    engine = FeatureEngine(
        "SPY", library=FeatureLibrary(prog.features), on_row=SetupRunner("SPY", [prog])
    )
    per_bar = []
    for ts, o, h, lo, c, v in zip(df.index.to_pydatetime(), df["open"], df["high"], df["low"],
                                  df["close"], df["volume"], strict=True):  # fmt: skip
        row = engine.update(ts, float(o), float(h), float(lo), float(c), float(v))
        if row is not None:
            per_bar.append(row["setups"]["T"][1].status == "fired")
    feats = compute_features(df, features=prog.features)
    regular = feats[feats["in_session"]]
    vec = prog.vector(setup_columns(regular, symbol="SPY", names=prog.features))["fire"]
    assert np.array_equal(np.array(per_bar), vec)
    assert 0 < vec.sum() < len(vec), "the expression must fire sometimes, not always"


def _doc_examples() -> list[str]:
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "strategy.md").read_text()
    part = text.split("### Worked example 1", 1)[1].split("### From paper to live", 1)[0]
    return [block.split("```", 1)[0] for block in part.split("```yaml\n")[1:]]


def test_the_three_worked_examples_in_the_docs_parse_and_fire_on_real_bars():
    examples = _doc_examples()
    assert len(examples) == 3
    df = pd.read_csv(shared_file("data/SPY_1m_2011-01.csv"))
    df.index = pd.to_datetime(df.pop("ts"), utc=True)
    for text in examples:
        prog = parse_definition(text).program(StrategyConfig())
        engine = FeatureEngine(
            "SPY", library=FeatureLibrary(prog.features), on_row=SetupRunner("SPY", [prog])
        )
        fired = []
        bars = zip(df.index.to_pydatetime(), df["open"], df["high"], df["low"], df["close"],
                   df["volume"], strict=True)  # fmt: skip
        for ts, o, h, lo, c, v in bars:
            row = engine.update(ts, float(o), float(h), float(lo), float(c), float(v))
            if row is not None:
                fired.append(row["setups"][prog.name][1].status == "fired")
        feats = compute_features(df, features=prog.features)
        regular = feats[feats["in_session"]]
        vec = prog.vector(setup_columns(regular, symbol="SPY", names=prog.features))["fire"]
        assert np.array_equal(np.array(fired), vec), prog.name
        assert vec.sum() >= 1, f"{prog.name} never fires on SPY January 2011"
