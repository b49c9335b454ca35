"""A paginator for the admin's big append-only tables that never runs COUNT(*) over the whole table.

The admin changelist asks the paginator for `count` on every page view. On an events or audit table
with millions of rows an exact count is the slowest query on the page, and nobody needs it exact.
Unfiltered on PostgreSQL we read the planner's estimate (`pg_class.reltuples`); otherwise we count at
most `cap` rows through a sliced subquery (`SELECT COUNT(*) FROM (… LIMIT cap)`), which stops early.
Pair it with `show_full_result_count = False` so the admin does not run its own unfiltered count.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

DEFAULT_CAP = 10_000


class CappedCountPaginator(Paginator):
    cap = DEFAULT_CAP

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not hasattr(queryset, "query"):  # a plain list (tests, "show all"): exact and cheap
            return len(queryset)
        if not queryset.query.where:
            estimate = _postgres_estimate(queryset)
            if estimate is not None and estimate > self.cap:
                return estimate
        return queryset.order_by()[: self.cap].count()


def _postgres_estimate(queryset) -> int | None:
    """The planner's row estimate for the table, or None off PostgreSQL / before the first ANALYZE."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    # reltuples is -1 for a table never vacuumed/analysed: fall back to the capped count.
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None
