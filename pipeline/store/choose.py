"""Which store a backend opens, from ``--store`` (checked by :mod:`pipeline.core.store_url`):
SQLite in the data directory by default, a SQLite file elsewhere, or PostgreSQL for several
backends sharing one database."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.store_url import is_postgres
from pipeline.store.base import EventStore

#: The SQLite file a backend keeps in its data directory when ``--store`` names none.
DEFAULT_FILE = "events.db"


def store_for(spec: str, data_dir: Path, backend: str) -> EventStore:
    """The store ``spec`` names (already checked), for the backend named ``backend``."""
    if is_postgres(spec):
        from pipeline.store.postgres import PostgresStore

        return PostgresStore(spec, backend=backend)
    from pipeline.store.sqlite import SQLiteStore

    path = Path(spec.removeprefix("sqlite://")) if spec else data_dir / DEFAULT_FILE
    return SQLiteStore(path, backend=backend)
