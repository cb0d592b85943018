"""django-filter building blocks shared by every list endpoint (symbol, time range)."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django_filters.fields import IsoDateTimeField

from marketdata.models import Bar, BarSource
from marketdata.serializers import SYMBOL_PATTERN


class SymbolFormField(forms.CharField):
    default_validators = [
        RegexValidator(SYMBOL_PATTERN, "not a ticker symbol (1-10 of A-Z, 0-9 and '.')")
    ]

    def to_python(self, value):
        value = super().to_python(value)
        return value.strip().upper() if value else value


class SymbolFilter(django_filters.CharFilter):
    """Exact ticker match; the query value is upper-cased and validated (400 when malformed)."""

    field_class = SymbolFormField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time converted to UTC (PostgreSQL refuses offsets beyond ±15:59);
    a naive time is taken as UTC."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return value
        try:
            if value.tzinfo is None:
                return value.replace(tzinfo=UTC)
            return value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("time out of range") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """since/until filters: ISO 8601, any offset, compared in UTC."""

    field_class = UtcIsoDateTimeField


class BarFilter(django_filters.FilterSet):
    symbol = SymbolFilter(field_name="symbol")
    source = django_filters.ChoiceFilter(choices=BarSource.choices)
    since = UtcDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="ts", lookup_expr="lte")

    class Meta:
        model = Bar
        fields = ["symbol", "source", "since", "until"]
