"""The production store: a PostgreSQL database, which several schedulers may share.

Each thread has a connection of its own, in autocommit mode with explicit transactions (as
SQLite's); a row about to be compared and set is read ``FOR UPDATE``, so that of two
schedulers changing one plan at once exactly one wins. A unique key taken twice is refused
as ``AlreadyExists``, as on SQLite."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from scheduler.service.sql_store import Connection, SqlStore
from scheduler.service.store import AlreadyExists, StoreUnavailable

CONNECT_TIMEOUT_S = 5


def without_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


class _Translated:
    """A psycopg connection that takes the store's ``?`` placeholders."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        try:
            return self._connection.execute(sql.replace("?", "%s"), parameters)
        except psycopg.errors.UniqueViolation as exc:
            raise AlreadyExists(str(exc).splitlines()[0]) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> None:
        with self._connection.cursor() as cursor:
            try:
                cursor.executemany(sql.replace("?", "%s"), rows)
            except psycopg.errors.UniqueViolation as exc:
                raise AlreadyExists(str(exc).splitlines()[0]) from None

    def close(self) -> None:
        self._connection.close()


class PostgresStore(SqlStore):
    dialect = "postgresql"
    lock_row = " FOR UPDATE"
    order_kind = "COALESCE(details::jsonb ->> 'kind', 'migrate')"

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            super().__init__()
        except psycopg.Error as exc:
            self.close()
            reason = " ".join(str(exc).split())
            raise StoreUnavailable(f"PostgreSQL at {without_password(url)}: {reason}") from None

    def _connect(self) -> Connection:
        connection = psycopg.connect(
            self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
            application_name="vmpack",
        )  # fmt: skip
        return _Translated(connection)
