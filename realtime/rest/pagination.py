"""Cursor pagination of every list endpoint, ordered by a unique integer column.

A cursor is opaque to clients but not tamper-proof: its position is
whatever the client encoded. DRF passes it to the ORM unchecked, so a
position that is not an integer failed in the query (a 500); here it is
DRF's own "Invalid cursor" (404), like any other malformed cursor.

`page_size` is checked like any other integer parameter: DRF silently used
the default for `page_size=abc` or `0`, which the schema (an integer of at
least 1) forbids; now that is a 400. A size over the maximum still gives
the maximum, as the schema says.
"""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination


class IntegerCursorPagination(CursorPagination):
    # Ordered by a unique key: pages stay stable while rows are added, and no
    # page can repeat or skip a row.
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = serializers.IntegerField(min_value=1).run_validation(raw)
        except serializers.ValidationError as error:
            raise serializers.ValidationError({self.page_size_query_param: error.detail}) from None
        return min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Results per page (default {self.page_size}; over {self.max_page_size} "
                    f"gives {self.max_page_size})."
                )
        return parameters

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
