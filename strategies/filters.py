"""Filters of the signal journal: symbol, setup, outcome, side and bar-time range."""

from __future__ import annotations

import django_filters
from django.conf import settings

from marketdata.filters import SymbolFilter, UtcDateTimeFilter
from strategies.models import Side, Signal, SignalOutcome


class SignalFilter(django_filters.FilterSet):
    symbol = SymbolFilter(field_name="symbol")
    execution_symbol = SymbolFilter(field_name="execution_symbol")
    setup = django_filters.MultipleChoiceFilter(
        choices=[(s, s) for s in settings.ALL_SETUPS], distinct=False
    )
    outcome = django_filters.MultipleChoiceFilter(choices=SignalOutcome.choices, distinct=False)
    side = django_filters.ChoiceFilter(choices=Side.choices)
    since = UtcDateTimeFilter(field_name="bar_ts", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="bar_ts", lookup_expr="lte")

    class Meta:
        model = Signal
        fields = ["symbol", "execution_symbol", "setup", "outcome", "side", "since", "until"]
