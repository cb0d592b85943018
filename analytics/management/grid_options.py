"""What the sweep and walk-forward commands share: the grid and the base run's options.

Both take `--grid NAME=v1,v2` (repeatable), `--data`, `--symbol`, `--setups`, `--mode` and
`--worst-case`, and hand the workers the same `base` dict, so the options are declared and read
in one place.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from analytics.sweeps import GridError, grid_parse


def add_grid_arguments(parser, *, data_help: str) -> None:
    parser.add_argument("--grid", action="append", default=[], help="NAME=v1,v2,...")
    parser.add_argument("--data", default="db", help=data_help)
    parser.add_argument("--symbol", default="SPY", help="signal symbol(s), comma-separated")
    parser.add_argument("--setups", default="")
    parser.add_argument("--mode", choices=("fast", "event"), default="fast")
    parser.add_argument("--worst-case", action="store_true")


def grid_from_options(options) -> dict:
    """The parsed grid, or a CommandError saying what is wrong with it."""
    if not options["grid"]:
        raise CommandError("give at least one --grid NAME=v1,v2")
    try:
        return grid_parse(options["grid"])
    except GridError as exc:
        raise CommandError(str(exc)) from exc


def _names(text: str) -> list[str]:
    return [s.strip().upper() for s in text.split(",") if s.strip()]


def base_from_options(options) -> dict:
    """The options every run of the grid shares, as the workers receive them."""
    return {
        "data": options["data"],
        "symbols": _names(options["symbol"]),
        "setups": _names(options["setups"]) or None,
        "mode": options["mode"],
        "worst_case": options["worst_case"],
    }
