"""Input/output shapes of the risk endpoints."""

from __future__ import annotations

from rest_framework import serializers

from risk.models import TradingMode, TradingStateChange


class CheckOutputSerializer(serializers.Serializer):
    stage = serializers.CharField()
    code = serializers.CharField()
    passed = serializers.BooleanField()
    message = serializers.CharField()


class RiskPreviewOutputSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    approved = serializers.BooleanField()
    qty = serializers.IntegerField()
    price = serializers.CharField(allow_null=True)
    notional = serializers.CharField(allow_null=True)
    checks = CheckOutputSerializer(many=True)
    reasons = serializers.ListField(child=serializers.CharField())


class TradingStateChangeOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = TradingStateChange
        fields = ["at", "from_state", "to_state", "reason", "actor"]


class TradingStateOutputSerializer(serializers.Serializer):
    account = serializers.CharField()
    state = serializers.ChoiceField(choices=TradingMode.choices)
    reason = serializers.CharField()
    changed_by = serializers.CharField(allow_null=True)
    changed_at = serializers.DateTimeField(allow_null=True)
    # the kill switch's halt lifts itself then, into that state (null: it does not)
    resume_at = serializers.DateTimeField(allow_null=True)
    resume_state = serializers.CharField(allow_null=True)
    history = TradingStateChangeOutputSerializer(many=True)
