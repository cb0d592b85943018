"""The names of the seven built-in setups, in their documented order.

A module with no imports, so the settings (ALL_SETUPS, the ENABLED_SETUPS check), the setup
registry and the strategy config's default all read the one list.
"""

BUILTIN_SETUPS = (
    "EMA_CROSS",
    "VWAP_RECLAIM",
    "SIGMA_FADE",
    "HOD_FAIL",
    "ORB",
    "TREND_PULLBACK",
    "VWAP_MEAN",
)
