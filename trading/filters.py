"""Filters of the ledger lists: symbol, status, role, side, setup and time range."""

from __future__ import annotations

import django_filters
from django.conf import settings

from marketdata.filters import SymbolFilter, UtcDateTimeFilter
from trading.models import Fill, Order, OrderRole, OrderStatus, Trade, TradeStatus

BIGINT_MAX = 2**63 - 1
SIDE_CHOICES = [
    ("buy", "buy"),
    ("sell", "sell"),
    ("sell_short", "sell_short"),
    ("buy_to_cover", "buy_to_cover"),
]


class OrderFilter(django_filters.FilterSet):
    symbol = SymbolFilter(field_name="symbol")
    status = django_filters.MultipleChoiceFilter(choices=OrderStatus.choices, distinct=False)
    role = django_filters.MultipleChoiceFilter(choices=OrderRole.choices, distinct=False)
    side = django_filters.ChoiceFilter(choices=SIDE_CHOICES)
    tag = django_filters.CharFilter(field_name="tag")
    signal = django_filters.NumberFilter(field_name="signal_id", min_value=0, max_value=BIGINT_MAX)
    trade = django_filters.NumberFilter(field_name="trade_id", min_value=0, max_value=BIGINT_MAX)
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lte")

    class Meta:
        model = Order
        fields = ["symbol", "status", "role", "side", "tag", "signal", "trade", "since", "until"]


class FillFilter(django_filters.FilterSet):
    symbol = SymbolFilter(field_name="symbol")
    order = django_filters.NumberFilter(field_name="order_id", min_value=0, max_value=BIGINT_MAX)
    side = django_filters.ChoiceFilter(choices=SIDE_CHOICES)
    since = UtcDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="ts", lookup_expr="lte")

    class Meta:
        model = Fill
        fields = ["symbol", "order", "side", "since", "until"]


class TradeFilter(django_filters.FilterSet):
    symbol = SymbolFilter(field_name="symbol")
    execution_symbol = SymbolFilter(field_name="execution_symbol")
    setup = django_filters.MultipleChoiceFilter(
        choices=[(s, s) for s in settings.ALL_SETUPS], distinct=False
    )
    status = django_filters.MultipleChoiceFilter(choices=TradeStatus.choices, distinct=False)
    exit_reason = django_filters.CharFilter(field_name="exit_reason")
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="created_at", lookup_expr="lte")

    class Meta:
        model = Trade
        fields = ["symbol", "execution_symbol", "setup", "status", "exit_reason", "since", "until"]
