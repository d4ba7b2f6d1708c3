"""Set-based statements for the hot write path (the inbox and chat sends).

On PostgreSQL each statement has one constant text and takes whole columns
as arrays (`unnest`), bound server-side: psycopg neither re-parses a query
whose length grows with the batch nor quotes every value into the SQL text,
which is where a batched send spent most of its CPU through the ORM. The
arrays go as `%b` (binary) parameters: no per-element text quoting, half the
writer's CPU per message at a batch of 100.
SQLite (the embedded demo) gets the equivalent multi-row VALUES.

Both run on the Django connection, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def execute_returning(
    postgres_sql: str,
    columns: Sequence[Sequence[Any]],
    *,
    sqlite_sql: str,
    row_template: str,
    extra_params: Sequence[Any] = (),
) -> list[tuple]:
    """Run an INSERT … RETURNING over column arrays.

    `postgres_sql` takes `extra_params` first, then one array per column.
    `sqlite_sql` has a `{rows}` slot filled with `row_template` per row;
    `extra_params` follow each row's values in the template order.
    """
    if _is_postgres():
        return fetch(postgres_sql, [*extra_params, *[list(column) for column in columns]])
    return fetch_rows_sqlite(
        sqlite_sql, columns, row_template=row_template, extra_params=extra_params
    )


def fetch_rows_sqlite(
    sqlite_sql: str,
    columns: Sequence[Sequence[Any]],
    *,
    row_template: str,
    extra_params: Sequence[Any] = (),
) -> list[tuple]:
    """SQLite's half of `execute_returning`: a `{rows}` slot, `row_template` per row."""
    rows = list(zip(*columns, strict=True))
    sql = sqlite_sql.format(rows=", ".join([row_template] * len(rows)))
    params: list[Any] = []
    for row in rows:
        params += [*row, *extra_params]
    return fetch(sql, params)


def fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
    """Execute on the Django connection; on PostgreSQL with server-side binding."""
    if not _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    import psycopg

    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    # Django's wrappers keep query logging, execute_wrapper hooks and
    # error translation (IntegrityError) working for this cursor too.
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    with wrap(raw) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def ids_where_in(table: str, ids: Sequence[int], condition: str) -> set[int]:
    """`SELECT id FROM table WHERE id IN ids AND condition` (condition: constant SQL)."""
    if not ids:
        return set()
    if _is_postgres():
        rows = fetch(f"SELECT id FROM {table} WHERE id = ANY(%s) AND {condition}", [list(ids)])
    else:
        marks = ", ".join(["%s"] * len(ids))
        rows = fetch(f"SELECT id FROM {table} WHERE id IN ({marks}) AND {condition}", list(ids))
    return {row[0] for row in rows}
