"""Limit/offset pagination that stays fast on large tables.

`count` is exact up to EXACT_COUNT_CAP rows; beyond that it is PostgreSQL's estimate (table
statistics when unfiltered, the planner's row estimate when filtered) and `count_exact` is
false. When the estimate is far above the cap, nothing is counted at all: counting 100k+
journal rows on every page would cost more than the page itself. `next` is always right: it
is derived from whether one more row exists, not from the count.
"""

from __future__ import annotations

import json

from django.db import connections
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

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
        from rest_framework.utils.urls import replace_query_param

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
