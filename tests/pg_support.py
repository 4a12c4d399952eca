"""The machine's PostgreSQL for the tests (started and given a role by .ci/setup-postgres):
each test gets a schema of its own in the test database, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

#: The test database, as .ci/setup-postgres makes it.
PG_DSN = os.environ.get("PIPELINE_TEST_POSTGRES", "postgresql://pipeline:pipeline@127.0.0.1:5432/pipeline_test")


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"PostgreSQL for the tests is not reachable at {PG_DSN} (run .ci/setup): {exc}") from exc


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A DSN whose tables live in a new, empty schema of the test database."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with _admin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_DSN}?options=-c%20search_path%3D{schema}"  # a URL, as an operator writes --store
    finally:
        with _admin() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
