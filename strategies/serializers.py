"""Output shape of the signal journal, shared by the list, detail and preview endpoints.

The list is the API's hottest read (dashboards poll it), so it has a lean twin of the DRF
serializer, `signal_rows`, which formats `.values()` rows the same way (pinned by a test)."""

from __future__ import annotations

from datetime import UTC

import orjson
from django.db.models import TextField
from django.db.models.functions import Cast
from rest_framework import serializers

from strategies.models import Signal

SIGNAL_FIELDS = [
    "id",
    "setup",
    "setup_version",
    "book",
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
_DECIMALS = ("entry_price", "stop_price", "target_one", "target_two")
_TIMES = ("bar_ts", "created_at")
_RAW_JSON = ("reasons", "checks", "features")


class SignalOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Signal
        fields = SIGNAL_FIELDS


def _iso(value):
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def signal_rows(rows) -> list[dict]:
    """`Signal.objects.values(*SIGNAL_FIELDS)` rows as SignalOutputSerializer renders them."""
    out = []
    for row in rows:
        for name in _DECIMALS:
            value = row[name]
            if value is not None:
                row[name] = f"{value:.4f}"
        for name in _TIMES:
            row[name] = _iso(row[name])
        row["score"] = float(row["score"])
        out.append(row)
    return out


def signal_values_raw(queryset):
    """The queryset as `.values()` with the JSON columns left as PostgreSQL's text, so the
    page is never decoded into Python objects only to be encoded again."""
    scalars = [f for f in SIGNAL_FIELDS if f not in _RAW_JSON]
    raw = {f"{name}__raw": Cast(name, output_field=TextField()) for name in _RAW_JSON}
    return queryset.values(*scalars, **raw)


def signal_rows_raw(rows) -> list[dict]:
    """`signal_values_raw` rows for orjson, JSON columns as pre-serialised fragments."""
    out = []
    for row in rows:
        for name in _RAW_JSON:
            row[name] = orjson.Fragment(row.pop(f"{name}__raw"))
        out.append(row)
    return signal_rows(out)
