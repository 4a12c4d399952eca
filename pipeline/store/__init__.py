"""Event stores: the interface and the SQLite implementation."""

from pipeline.store.base import CheckKey, EventStore
from pipeline.store.sqlite import SQLiteStore

__all__ = ["CheckKey", "EventStore", "SQLiteStore"]
