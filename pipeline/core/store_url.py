"""What ``--store`` may name: SQLite (a path, or ``sqlite:///PATH``) or PostgreSQL
(``postgresql://`` or ``postgres://``, libpq's URL). Checked where the flag is read, with no
store imported (a daemon's ``--help`` stays quick)."""

from __future__ import annotations

from pipeline.errors import ValidationError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def check_store(spec: str) -> str:
    """``spec`` if a backend can open a store from it (raises ValidationError naming ``--store``)."""
    if spec.startswith(POSTGRES_SCHEMES):
        from psycopg import ProgrammingError, conninfo  # only for a PostgreSQL store

        try:
            conninfo.conninfo_to_dict(spec)
        except ProgrammingError as exc:
            raise ValidationError("--store", f"not a PostgreSQL URL: {exc}") from None
        return spec
    if "://" in spec and not spec.startswith("sqlite://"):
        scheme = spec.split("://", 1)[0]
        known = "sqlite:///PATH, a path, or postgresql://USER:PASSWORD@HOST/DATABASE"
        raise ValidationError("--store", f"{scheme}:// is not a store pipeline knows ({known})")
    if "://" not in spec and "=" in spec and any(f"{key}=" in spec for key in ("host", "dbname", "user", "port")):
        raise ValidationError("--store", "a libpq keyword string is not a path; write it as "
                                         "postgresql://USER@HOST:PORT/DATABASE")  # fmt: skip
    if spec.startswith("sqlite://") and not spec.removeprefix("sqlite://"):
        raise ValidationError("--store", "sqlite:// names no file (sqlite:///PATH)")
    return spec


def is_postgres(spec: str) -> bool:
    return spec.startswith(POSTGRES_SCHEMES)
