"""Who may use the HTTP API: API keys with a role, and bearer tokens from ``/auth``.

Roles: ``admin`` may do everything; ``ingest`` may only push events (the Sensu events API's
POST and PUT, Sematext's and StackState's intake). Keys come from the command line
(``--admin-key``, ``--ingest-key``), from ``<data>/admin.key`` (created on first start when
no admin key or user is configured), and from the API (created and revoked there; only their
SHA-256 is stored). ``POST /auth`` (or ``GET``, as Sensu Go) with a user's password gives a
bearer token with that user's role for :data:`TOKEN_LIFETIME` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.model.apikey import StoredKey

ADMIN, INGEST = "admin", "ingest"
ROLES = (ADMIN, INGEST)
TOKEN_LIFETIME = 900

#: The requests an ingest key may make (method, path pattern).
_INGEST_ALLOWED = (
    ("POST", re.compile(r"\A/api/core/v2/namespaces/[^/]+/events\Z")),
    ("PUT", re.compile(r"\A/api/core/v2/namespaces/[^/]+/events/[^/]+/[^/]+\Z")),
    ("POST", re.compile(r"\A/api/core/v2/namespaces/[^/]+/events/[^/]+/[^/]+\Z")),
)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return secrets.token_urlsafe(32)


def ingest_may(method: str, path: str) -> bool:
    return any(method == m and pattern.match(path) for m, pattern in _INGEST_ALLOWED)


@dataclass(slots=True)
class ApiKeys:
    """Every credential the API accepts. ``stored`` is refreshed by the backend when keys change."""

    configured: dict[str, str] = field(default_factory=dict)  # digest -> role
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (password, role)
    stored: dict[str, StoredKey] = field(default_factory=dict)  # digest -> key
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (role, expires at)
    wall_clock: Callable[[], float] = time.time

    @classmethod
    def of(cls, admin: Iterable[str], ingest: Iterable[str], users: Iterable[tuple[str, str]] = ()) -> ApiKeys:
        configured = {digest(k): INGEST for k in ingest}
        configured.update({digest(k): ADMIN for k in admin})
        return cls(configured=configured, users={name: (password, ADMIN) for name, password in users})

    def role_of_key(self, key: str) -> str | None:
        if not key:
            return None
        hashed = digest(key)
        if hashed in self.configured:
            return self.configured[hashed]
        stored = self.stored.get(hashed)
        return stored.role if stored is not None else None

    def role_of(self, authorization: str) -> str | None:
        """The role an ``Authorization`` header grants (``Key <key>`` or ``Bearer <token>``), if any."""
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() == "key":
            return self.role_of_key(credential)
        if scheme.lower() == "bearer":
            found = self.tokens.get(credential)
            if found is not None and found[1] > self.wall_clock():
                return found[0]
        return None

    def login(self, authorization: str, body: Any = None) -> dict[str, Any] | None:
        """A bearer token for a user's Basic credentials (or a JSON ``{username, password}``)."""
        user = password = ""
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
        elif isinstance(body, dict):
            user, password = str(body.get("username", "")), str(body.get("password", ""))
        known = self.users.get(user)
        if known is None or not hmac.compare_digest(known[0].encode(), password.encode()):
            return None
        now = self.wall_clock()
        self.tokens = {t: v for t, v in self.tokens.items() if v[1] > now}
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (known[1], now + TOKEN_LIFETIME)
        return {"access_token": token, "expires_at": int(now + TOKEN_LIFETIME), "refresh_token": ""}
