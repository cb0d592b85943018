"""Output shapes of the ledger (orders, fills, positions, trades), shared by several views."""

from __future__ import annotations

from rest_framework import serializers

from trading.models import AccountSnapshot, Fill, Order, OrderEvent, Position, Trade

ORDER_FIELDS = [
    "id",
    "tag",
    "broker",
    "book",
    "broker_order_id",
    "parent",
    "trade",
    "signal",
    "role",
    "symbol",
    "side",
    "qty",
    "order_type",
    "order_class",
    "duration",
    "price",
    "stop_price",
    "legs",
    "status",
    "filled_qty",
    "avg_fill_price",
    "reject_reason",
    "created_at",
    "updated_at",
]


class OrderOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Order
        fields = ORDER_FIELDS


class OrderEventOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderEvent
        fields = ["from_status", "to_status", "cause", "at"]


class FillOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Fill
        fields = ["id", "order", "broker_fill_id", "symbol", "side", "qty", "price", "fee", "ts"]


class OrderDetailOutputSerializer(serializers.ModelSerializer):
    """One order with its broker payloads, transitions and fills."""

    events = OrderEventOutputSerializer(many=True, read_only=True)
    fills = FillOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [*ORDER_FIELDS, "request_payload", "response_payload", "events", "fills"]


class PositionOutputSerializer(serializers.ModelSerializer):
    unrealized_pnl = serializers.DecimalField(max_digits=16, decimal_places=4, read_only=True)

    class Meta:
        model = Position
        fields = [
            "id",
            "symbol",
            "qty",
            "avg_price",
            "last_price",
            "realized_pnl",
            "unrealized_pnl",
            "updated_at",
        ]


class TradeOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Trade
        fields = [
            "id",
            "signal",
            "setup",
            "book",
            "symbol",
            "execution_symbol",
            "side",
            "qty",
            "remaining_qty",
            "entry_price",
            "stop_price",
            "initial_stop_price",
            "target_one",
            "target_two",
            "partial_done",
            "trail_pct",
            "trail_act_pct",
            "trail_high",
            "trail_active",
            "deadline",
            "status",
            "exit_reason",
            "realized_pnl",
            "opened_at",
            "closed_at",
            "created_at",
        ]


class AccountSnapshotOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AccountSnapshot
        fields = ["ts", "broker", "equity", "cash", "buying_power", "day_pnl", "open_pnl"]
