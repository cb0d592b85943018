"""Output shape of the signal journal, shared by the list, detail and preview endpoints."""

from __future__ import annotations

from rest_framework import serializers

from strategies.models import Signal


class SignalOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Signal
        fields = [
            "id",
            "setup",
            "symbol",
            "execution_symbol",
            "bar_ts",
            "side",
            "score",
            "entry_price",
            "stop_price",
            "target_one",
            "target_two",
            "qty",
            "session_policy",
            "outcome",
            "reasons",
            "checks",
            "features",
            "created_at",
        ]
