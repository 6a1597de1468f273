"""The embedded store: one SQLite file in WAL mode (readers run beside the one writer)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from scheduler.service.sql_store import Connection, SqlStore
from scheduler.service.store import StoreUnavailable


class SqliteStore(SqlStore):
    dialect = "sqlite"
    begin = "BEGIN IMMEDIATE"  # the write lock at once: no deadlock between two upgrades
    order_kind = "COALESCE(json_extract(details, '$.kind'), 'migrate')"

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        try:
            super().__init__()
        except sqlite3.Error as exc:
            self.close()
            raise StoreUnavailable(f"SQLite file {self._path}: {exc}") from None

    def _connect(self) -> Connection:
        connection = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")  # kept by the file; cheap to repeat
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=10000")
        return connection
