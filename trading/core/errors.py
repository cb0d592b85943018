"""Typed errors of the trading stage. Each has a stable `code` (what a trader filters and a
client matches) and an HTTP status; views map them, they never parse messages."""

from __future__ import annotations


class TradingError(Exception):
    code = "TRADING_ERROR"
    http_status = 400
    field: str | None = None  # the input field the error is about, when there is one

    def __init__(self, message: str = "", **details) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details

    def as_dict(self) -> dict:
        return {"code": self.code, "error": self.message, **self.details}


class ForceNotAllowed(TradingError, PermissionError):
    """`force` (skip the risk rules) is for superusers only."""

    code = "FORCE_NOT_ALLOWED"
    http_status = 403


class NoPrice(TradingError):
    code = "NO_PRICE"
    field = "price"


class BracketLevelsMissing(TradingError):
    code = "BRACKET_LEVELS_MISSING"
    field = "stop_pct"


class QuantityZero(TradingError):
    code = "QTY_ZERO"
    field = "qty"


class OrderNotWorking(TradingError):
    code = "ORDER_NOT_WORKING"
    http_status = 409


class IllegalTransition(TradingError):
    code = "ILLEGAL_TRANSITION"
    http_status = 409
