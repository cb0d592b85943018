"""API fields and output shapes for market data, reused by the downstream apps' views."""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework.utils import html

from marketdata.models import Bar

SYMBOL_PATTERN = r"^[A-Z][A-Z0-9.]{0,9}$"
SYMBOL_INPUT_PATTERN = r"^[A-Za-z][A-Za-z0-9.]{0,9}$"  # accepted on input, then upper-cased
_SYMBOL_RE = re.compile(SYMBOL_PATTERN)


def symbol_normalise(value: str) -> str:
    """Upper-case and validate a ticker; raises serializers.ValidationError."""
    symbol = (value or "").strip().upper()
    if not _SYMBOL_RE.match(symbol):
        raise serializers.ValidationError(
            "not a ticker symbol (1-10 of A-Z, 0-9 and '.', starting with a letter)"
        )
    return symbol


class SymbolField(serializers.CharField):
    """A ticker symbol, upper-cased (`aapl` → `AAPL`). An empty value is an error, not "all
    symbols": `?symbol=` from a script with an unset variable must not cancel everything."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 10)
        kwargs.setdefault("min_length", 1)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("validators", [RegexValidator(SYMBOL_INPUT_PATTERN)])
        super().__init__(**kwargs)

    def get_value(self, dictionary):
        if html.is_html_input(dictionary) and dictionary.get(self.field_name, None) == "":
            return ""
        return super().get_value(dictionary)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value != value.strip():
            raise serializers.ValidationError("no spaces around the symbol")
        return symbol_normalise(value)


class PositivePriceField(serializers.DecimalField):
    """A price > 0 with at most 4 decimals."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 4)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value <= 0:
            raise serializers.ValidationError("must be greater than 0")
        return value


class BarOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Bar
        fields = [
            "id",
            "symbol",
            "ts",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "vwap",
            "trades",
            "source",
        ]
