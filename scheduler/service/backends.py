"""Which store a ``--db`` names: a PostgreSQL URL, or a SQLite file."""

from __future__ import annotations

from scheduler.service.store import POSTGRES_SCHEMES, Store


def open_store(db: str) -> Store:
    """``postgresql://USER@HOST:PORT/DB`` opens PostgreSQL; anything else is a SQLite file.
    ``StoreUnavailable`` if it cannot be opened, in one line without the password."""
    if db.startswith(POSTGRES_SCHEMES):
        from scheduler.service.postgres_store import PostgresStore

        return PostgresStore(db)
    from scheduler.service.sqlite_store import SqliteStore

    return SqliteStore(db)
