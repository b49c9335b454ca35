from rest_framework.pagination import CursorPagination


class Pagination(CursorPagination):
    """Cursor pagination: stable under inserts and no COUNT(*) over big tables."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
