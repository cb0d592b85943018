"""django-filter building blocks shared by every list endpoint (symbol, time range)."""

from __future__ import annotations

import django_filters
from django import forms
from django.core.validators import RegexValidator

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


class BarFilter(django_filters.FilterSet):
    symbol = SymbolFilter(field_name="symbol")
    source = django_filters.ChoiceFilter(choices=BarSource.choices)
    since = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="lte")

    class Meta:
        model = Bar
        fields = ["symbol", "source", "since", "until"]
