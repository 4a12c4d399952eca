"""Who may use the HTTP API: API keys with a role, and bearer tokens from ``/auth``.

Roles: ``admin`` may do everything; ``ingest`` may only push events (the Sensu events API's
POST and PUT, Sematext's and StackState's intake); ``viewer`` may only read (GET and HEAD; on
the dashboard it sees no buttons). Keys come from the command line (``--admin-key``,
``--ingest-key``, ``--viewer-key``), from ``<data>/admin.key`` (created on first start when
no admin key or user is configured), and from the API (created and revoked there; only their
SHA-256 is stored). ``GET /auth`` with a user's password (Basic) opens a login session with
that user's role (:mod:`pipeline.backend.sessions`): a bearer token and a refresh token.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from pipeline.backend.sessions import Sessions
from pipeline.logs import get_logger
from pipeline.model.apikey import StoredKey

log = get_logger("backend.auth")

ADMIN, INGEST, VIEWER = "admin", "ingest", "viewer"
ROLES = (ADMIN, INGEST, VIEWER)
#: The methods a viewer key may use: reads only.
_VIEWER_METHODS = frozenset({"GET", "HEAD"})

#: The requests an ingest key may make (method, path pattern).
_INGEST_ALLOWED = (
    ("POST", re.compile(r"\A/api/core/v2/namespaces/[^/]+/events\Z")),
    ("PUT", re.compile(r"\A/api/core/v2/namespaces/[^/]+/events/[^/]+/[^/]+\Z")),
    ("POST", re.compile(r"\A/api/core/v2/namespaces/[^/]+/events/[^/]+/[^/]+\Z")),
)


def digest(key: str) -> str:
    return sha256(key.encode()).hexdigest()


def new_key() -> str:
    """256 random bits in hex. Not URL-safe base64: one such key in 64 begins with "-", which
    ``pipeline ... --api-key KEY`` (argparse) then takes for an option and refuses."""
    return secrets.token_hex(32)


def ingest_may(method: str, path: str) -> bool:
    return any(method == m and pattern.match(path) for m, pattern in _INGEST_ALLOWED)


def viewer_may(method: str) -> bool:
    return method in _VIEWER_METHODS


#: Keys whose digest :class:`ApiKeys` keeps.
DIGESTS_KEPT = 64


@dataclass(slots=True)
class ApiKeys:
    """Every credential the API accepts. ``stored`` is refreshed by the backend when keys change."""

    configured: dict[str, str] = field(default_factory=dict)  # digest -> role
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (password, role)
    stored: dict[str, StoredKey] = field(default_factory=dict)  # digest -> key
    sessions: Sessions = field(default_factory=Sessions)
    wall_clock: Callable[[], float] = time.time
    #: the digests of the keys met lately: a client sends its key with every request, and hashing
    #: it each time was 2 % of an event's intake (bounded: emptied when full, keys come from outside)
    _digests: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def of(
        cls,
        admin: Iterable[str],
        ingest: Iterable[str],
        users: Iterable[tuple[str, str]] = (),
        sessions: Sessions | None = None,
        viewer: Iterable[str] = (),
    ) -> ApiKeys:
        configured = {digest(k): VIEWER for k in viewer}
        configured.update({digest(k): INGEST for k in ingest})
        configured.update({digest(k): ADMIN for k in admin})
        return cls(configured=configured, users={name: (password, ADMIN) for name, password in users},
                   sessions=sessions if sessions is not None else Sessions())  # fmt: skip

    def role_of_key(self, key: str) -> str | None:
        if not key:
            return None
        hashed = self._digests.get(key)
        if hashed is None:
            if len(self._digests) >= DIGESTS_KEPT:
                self._digests.clear()
            hashed = self._digests[key] = sha256(key.encode()).hexdigest()  # digest(), without the call
        role = self.configured.get(hashed)
        if role is not None:
            return role
        stored = self.stored.get(hashed)
        return stored.role if stored is not None else None

    def role_of(self, authorization: str) -> str | None:
        """The role an ``Authorization`` header grants (``Key <key>`` or ``Bearer <token>``), if any."""
        scheme, _, credential = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "key":
            return self.role_of_key(credential.strip())
        if scheme == "bearer":
            return self.sessions.role_of(credential.strip(), self.wall_clock())
        return None

    def user_of(self, authorization: str, body: Any = None) -> tuple[str, str] | None:
        """The user and role whose password is given: Basic credentials (or, on ``POST /auth``,
        a JSON ``{username, password}``); None when they are wrong or missing."""
        user = password = ""
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
        elif isinstance(body, dict):
            user, password = str(body.get("username", "")), str(body.get("password", ""))
        known = self.users.get(user)
        # compared even for an unknown user, so that timing does not tell which users exist
        matches = hmac.compare_digest((known[0] if known else "").encode(), password.encode())
        return (user, known[1]) if known is not None and matches else None

    def login(self, authorization: str, body: Any = None) -> dict[str, Any] | None:
        """Sensu Go's ``Tokens`` (access and refresh tokens) for a user's password."""
        found = self.user_of(authorization, body)
        return None if found is None else self.sessions.open(*found, self.wall_clock())


#: The admin key a backend makes in its data directory when none is configured.
ADMIN_KEY_FILE = "admin.key"


def admin_key_file(data_dir: Path, keys: ApiKeys, *, created: bool) -> str | None:
    """``<data>/admin.key``: read if there; else made (mode 0600) if ``created`` (no admin key
    or user is configured), else None. A key read or made is an admin key of ``keys``."""
    path = data_dir / ADMIN_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
    elif not created:
        return None
    else:
        key = new_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key + "\n")
        log.info("admin API key created", path=str(path))
    keys.configured[digest(key)] = ADMIN
    return key
