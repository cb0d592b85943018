"""List pagination: keyset cursors by default (KeysetPagination), limit/offset with a count
when the client sends `offset` (EstimatedCountPagination).

Limit/offset pagination that stays fast on large tables:

`count` is exact up to EXACT_COUNT_CAP rows; beyond that it is PostgreSQL's estimate (table
statistics when unfiltered, the planner's row estimate when filtered) and `count_exact` is
false. When the estimate is far above the cap, nothing is counted at all: counting 100k+
journal rows on every page would cost more than the page itself. `next` is always right: it
is derived from whether one more row exists, not from the count.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connections
from django.db.models import Q
from django.template import loader
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import remove_query_param, replace_query_param

EXACT_COUNT_CAP = 1_000
MAX_OFFSET = 10**12  # beyond any table; PostgreSQL's OFFSET is a bigint


def _table_estimate(queryset) -> int | None:
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [queryset.model._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


def _planner_estimate(queryset) -> int | None:
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPagination(LimitOffsetPagination):
    max_limit = 1000

    def get_offset(self, request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)

    def get_count(self, queryset) -> int:
        self.count_exact = True
        if not hasattr(queryset, "query"):
            return len(queryset)
        unfiltered = not queryset.query.where
        estimate = _table_estimate(queryset) if unfiltered else _planner_estimate(queryset)
        if estimate is not None and estimate > EXACT_COUNT_CAP * 10:
            self.count_exact = False  # clearly large: counting would cost more than the page
            return estimate
        capped = queryset.order_by()[: EXACT_COUNT_CAP + 1].count()
        if capped <= EXACT_COUNT_CAP:
            return capped
        self.count_exact = False
        return max(estimate or 0, capped)

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.count = self.get_count(queryset)
        self.offset = self.get_offset(request)
        rows = list(queryset[self.offset : self.offset + self.limit + 1])
        self.has_more = len(rows) > self.limit
        rows = rows[: self.limit]
        seen = self.offset + len(rows) + (1 if self.has_more else 0)
        if self.count < seen:  # an estimate below what exists (or rows arrived meanwhile)
            self.count = seen
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        return rows

    def get_next_link(self):
        if not self.has_more:
            return None
        return super().get_next_link() or self._next_url()

    def _next_url(self):
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, self.limit_query_param, self.limit)
        return replace_query_param(url, self.offset_query_param, self.offset + self.limit)

    def get_paginated_response(self, data):
        return Response(
            {
                "count": self.count,
                "count_exact": self.count_exact,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        out = super().get_paginated_response_schema(schema)
        out["properties"]["count_exact"] = {
            "type": "boolean",
            "description": f"false when count is PostgreSQL's estimate (over {EXACT_COUNT_CAP})",
        }
        return out


# --- keyset (cursor) pagination: the default for lists -------------------------------------------
class KeysetPagination(BasePagination):
    """Pages that cost one query however deep the reader goes, and no count.

    The list's own ordering (e.g. `-bar_ts, -id`) is the key; `next`/`previous` carry the key of
    the page's last/first row in an opaque `cursor`, and the next page is read with a row
    comparison (`bar_ts < x OR (bar_ts = x AND id < y)`), which the time index answers directly,
    instead of OFFSET, which reads and drops every earlier row. Ties on the time are exact (the id
    breaks them, whatever their number: a 500-symbol universe journals thousands of signals per
    minute). `?count=true` adds `count`/`count_exact` (as EstimatedCountPagination counts them).

    The spec's `?offset=` still works: a request carrying it is paginated by
    EstimatedCountPagination (limit/offset, with the count), unchanged.
    """

    cursor_query_param = "cursor"
    limit_query_param = "limit"
    count_query_param = "count"
    default_limit = api_settings.PAGE_SIZE or 100
    max_limit = EstimatedCountPagination.max_limit
    template = "rest_framework/pagination/previous_and_next.html"

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.offset_mode = None
        offset_asked = EstimatedCountPagination.offset_query_param in request.query_params
        if offset_asked or not hasattr(queryset, "query"):  # a plain list has no key to seek
            self.offset_mode = EstimatedCountPagination()
            return self.offset_mode.paginate_queryset(queryset, request, view)
        self.limit = self._limit(request)
        self.ordering = _unique_ordering(queryset)
        self.count = self.count_exact = None
        if _truthy(request.query_params.get(self.count_query_param)):
            counter = EstimatedCountPagination()
            self.count = counter.get_count(queryset)
            self.count_exact = counter.count_exact
        key, backwards = self._decode(request, queryset.model)
        ordering = _reversed(self.ordering) if backwards else self.ordering
        queryset = queryset.order_by(*ordering)
        if key is not None:
            queryset = queryset.filter(_after(ordering, key))
        rows = list(queryset[: self.limit + 1])
        more = len(rows) > self.limit
        rows = rows[: self.limit]
        if backwards:
            rows.reverse()
            self.next_key = _key(rows[-1], self.ordering) if rows else None
            self.previous_key = _key(rows[0], self.ordering) if more else None
        else:
            self.next_key = _key(rows[-1], self.ordering) if more else None
            self.previous_key = _key(rows[0], self.ordering) if key is not None and rows else None
        if (self.next_key or self.previous_key) and self.template is not None:
            self.display_page_controls = True
        return rows

    def _limit(self, request) -> int:
        raw = request.query_params.get(self.limit_query_param)
        try:
            value = int(raw) if raw is not None else self.default_limit
        except ValueError:
            return self.default_limit
        return min(value, self.max_limit) if value > 0 else self.default_limit

    def _decode(self, request, model):
        raw = request.query_params.get(self.cursor_query_param)
        if not raw:
            return None, False
        try:
            payload = json.loads(base64.urlsafe_b64decode(raw.encode("ascii") + b"=="))
            values, backwards = payload["k"], bool(payload.get("b"))
            if not isinstance(values, list) or len(values) != len(self.ordering):
                raise ValueError("wrong key length")
            key = [
                _field_value(model, name.lstrip("-"), value)
                for name, value in zip(self.ordering, values, strict=True)
            ]
        except (ValueError, KeyError, TypeError, UnicodeError, DjangoValidationError):
            raise ValidationError({self.cursor_query_param: ["invalid cursor"]}) from None
        return key, backwards

    def _link(self, key, *, backwards: bool) -> str:
        payload = {"k": [_jsonable(v) for v in key]}
        if backwards:
            payload["b"] = 1
        cursor = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, self.cursor_query_param, cursor.decode().rstrip("="))
        return remove_query_param(url, EstimatedCountPagination.offset_query_param)

    def get_next_link(self):
        if self.offset_mode is not None:
            return self.offset_mode.get_next_link()
        return None if self.next_key is None else self._link(self.next_key, backwards=False)

    def get_previous_link(self):
        if self.offset_mode is not None:
            return self.offset_mode.get_previous_link()
        return None if self.previous_key is None else self._link(self.previous_key, backwards=True)

    def page_envelope(self, results) -> dict:
        """The response body around `results` (for views that render it themselves)."""
        if self.offset_mode is not None:
            return self.offset_mode.get_paginated_response(results).data
        body = {"next": self.get_next_link(), "previous": self.get_previous_link()}
        if self.count is not None:
            body.update(count=self.count, count_exact=self.count_exact)
        body["results"] = results
        return body

    def get_paginated_response(self, data):
        return Response(self.page_envelope(data))

    def get_html_context(self):
        return {"previous_url": self.get_previous_link(), "next_url": self.get_next_link()}

    def to_html(self):
        return loader.get_template(self.template).render(self.get_html_context())

    def get_paginated_response_schema(self, schema):
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "count": {
                    "type": "integer",
                    "description": "with ?count=true or ?offset= only",
                },
                "count_exact": {
                    "type": "boolean",
                    "description": f"false when count is an estimate (over {EXACT_COUNT_CAP})",
                },
                "next": {**link, "example": "https://host/api/v1/signals?cursor=eyJrIjpb…"},
                "previous": link,
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        def param(name, kind, description):
            return {
                "name": name,
                "required": False,
                "in": "query",
                "description": description,
                "schema": {"type": kind},
            }

        return [
            param(self.limit_query_param, "integer", f"rows per page (at most {self.max_limit})"),
            param(self.cursor_query_param, "string", "the page after/before: from next/previous"),
            param(
                self.count_query_param, "boolean", "also count the rows (estimated beyond 1,000)"
            ),
            param(
                EstimatedCountPagination.offset_query_param,
                "integer",
                "limit/offset paging with a count instead of cursors",
            ),
        ]


def _truthy(value) -> bool:
    return str(value).lower() in {"1", "true", "yes", "on"}


def _unique_ordering(queryset) -> list[str]:
    """The queryset's ordering, ending with the primary key (the tie-breaker) in the direction
    of the first field."""
    ordering = list(queryset.query.order_by or queryset.model._meta.ordering)
    if not ordering or not all(isinstance(o, str) for o in ordering):
        ordering = ["-pk"]  # expressions cannot be a key: newest first by id
    ordering = ["-id" if o == "-pk" else "id" if o == "pk" else o for o in ordering]
    pk = queryset.model._meta.pk.name
    if not any(o.lstrip("-") == pk for o in ordering):
        ordering.append(("-" if ordering[0].startswith("-") else "") + pk)
    return ordering


def _reversed(ordering: list[str]) -> list[str]:
    return [o[1:] if o.startswith("-") else f"-{o}" for o in ordering]


def _key(row, ordering: list[str]) -> list:
    names = [o.lstrip("-") for o in ordering]
    if isinstance(row, dict):
        return [row[name] for name in names]
    return [getattr(row, name) for name in names]


def _after(ordering: list[str], key: list) -> Q:
    """Rows strictly after `key` in `ordering`: (a > x) OR (a = x AND b > y) OR …, with `<`
    for descending fields; the first field's bound (a >= x) is repeated so an index on it
    serves as the index condition."""
    condition = Q()
    equal = Q()
    for name, value in zip(ordering, key, strict=True):
        field = name.lstrip("-")
        op = "lt" if name.startswith("-") else "gt"
        condition |= equal & Q(**{f"{field}__{op}": value})
        equal &= Q(**{field: value})
    first = ordering[0]
    bound = {f"{first.lstrip('-')}__{'lte' if first.startswith('-') else 'gte'}": key[0]}
    return Q(**bound) & condition


def _field_value(model, name: str, value):
    """A cursor's JSON value as the model field's Python value (raises ValidationError/ValueError
    for junk); names that are not fields (annotations) keep the JSON value."""
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return value
    return field.to_python(value)


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal | date):
        return str(value)
    return value
