"""Cursor pagination of every list endpoint, ordered by a unique integer column.

A cursor is opaque to clients but not tamper-proof: its position is
whatever the client encoded. DRF passes it to the ORM unchecked, so a
position that is not an integer failed in the query (a 500); here it is
DRF's own "Invalid cursor" (404), like any other malformed cursor.
"""

from __future__ import annotations

from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination


class IntegerCursorPagination(CursorPagination):
    # Ordered by a unique key: pages stay stable while rows are added, and no
    # page can repeat or skip a row.
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        try:
            position = int(cursor.position)
        except ValueError:
            raise NotFound(self.invalid_cursor_message) from None
        return cursor._replace(position=position)


class NewestFirstPagination(IntegerCursorPagination):
    """History lists (chat, notifications, projects, tasks): newest first."""
