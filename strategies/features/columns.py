"""The names of the built-in feature columns, in one place: the engines produce them, the
setups' rows and the DSL read them (an order the fast mode's row arrays rely on)."""

# What both feature engines compute for every bar (DESIGN §3).
FEATURE_COLUMNS = (
    "ema_20",
    "ema_50",
    "ema_20_slope",
    "vwap",
    "vwap_sigma",
    "vwap_upper_1",
    "vwap_lower_1",
    "vwap_upper_2",
    "vwap_lower_2",
    "atr_14",
    "rvol",
    "hod",
    "lod",
    "or_high",
    "or_low",
    "prev_close",
    "prev_day_close",
    "ema5m_20",
    "ema5m_50",
    "ema15m_20",
    "ema15m_50",
    "regime_score",
)

# A setup's feature row: the features plus the previous bar's EMAs (cross detection).
ROW_COLUMNS = FEATURE_COLUMNS[:2] + ("ema_20_prev", "ema_50_prev") + FEATURE_COLUMNS[2:]

# Every numeric name a setup definition may read without declaring a calculator.
BASE_NUMERIC = ("open", "high", "low", "close", "volume", "minute") + ROW_COLUMNS
