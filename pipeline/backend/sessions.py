"""Login sessions of the HTTP API: Sensu Go's access and refresh tokens. Pure (time is a parameter).

A login (``GET /auth`` with a user's password) opens a session and gets a pair: an access token
for ``Authorization: Bearer`` (:attr:`Lifetimes.access`, 5 minutes by default as in Sensu Go)
and a refresh token (:attr:`Lifetimes.refresh`, 12 hours). ``POST /auth/token`` with the
session's access token (expired or not, as sensuctl sends it) and its current refresh token
gives a new pair; the refresh token used is spent, and presenting a spent one closes the session
(Sensu Go 6.10's defence against a stolen refresh token). ``POST /auth/logout`` closes the
session: its access tokens stop working at once (Sensu Go lets them run out) and it can no
longer be refreshed.

Tokens look like Sensu Go's JWTs (``sub``, ``exp``, ``iat``, ``jti``, ``sid`` claims, signed
with a key made at start), so that sensuctl can read the user name from them; but a token is
only ever accepted by looking it up in the sessions held here, in memory: a restarted backend
knows no session, and everyone logs in again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

#: Sensu Go's defaults (``--access-token-expiry 5m``, ``--refresh-token-expiry 720m``).
ACCESS_LIFETIME = 300.0
REFRESH_LIFETIME = 12 * 3600.0
#: The longest lifetimes the flags take.
MAX_ACCESS_LIFETIME = 24 * 3600.0
MAX_REFRESH_LIFETIME = 30 * 24 * 3600.0
#: Sessions held at most; past it the oldest is closed (a login needs a user's password, so
#: only users can fill it, but nothing held in memory is unbounded).
MAX_SESSIONS = 10_000


@dataclass(slots=True, frozen=True)
class Lifetimes:
    access: float = ACCESS_LIFETIME
    refresh: float = REFRESH_LIFETIME


def parse_lifetime(text: str, most: float) -> float:
    """A lifetime flag as Sensu Go writes it (a Go duration: ``5m``, ``720m``, ``12h``) in
    seconds; raises ValueError naming the bounds."""
    seconds = 0.0
    for match in _DURATION_PART.finditer(text):
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
    if not text or _DURATION_PART.sub("", text) or not 1 <= seconds <= most:
        raise ValueError(f"expected a duration from 1s to {int(most // 3600)}h (e.g. 5m, 12h), got {text[:40]!r}")
    return seconds


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)", re.ASCII)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class SessionRefused(Exception):
    """A refresh or logout refused; ``reason`` is a metric label, the message is safe to send."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class _Session:
    user: str
    role: str
    refresh: str  # the one refresh token that may be used next
    refresh_expires: float
    access: dict[str, float] = field(default_factory=dict)  # token -> expires at


@dataclass(slots=True)
class Sessions:
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    max_sessions: int = MAX_SESSIONS
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _sessions: dict[str, _Session] = field(default_factory=dict)  # session id -> session, oldest first
    _by_access: dict[str, str] = field(default_factory=dict)  # access token -> session id
    #: sessions closed so far to make room for new ones (the caller counts and logs them)
    evicted: int = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, user: str, role: str, now: float) -> dict[str, Any]:
        """A new session for a user who gave the right password: Sensu Go's ``Tokens``."""
        self._forget_ended(now)
        while len(self._sessions) >= self.max_sessions:
            self._close(next(iter(self._sessions)))
            self.evicted += 1
        sid = secrets.token_hex(16)
        session = _Session(user, role, "", 0.0)
        self._sessions[sid] = session
        return self._issue(sid, session, now)

    def role_of(self, access: str, now: float) -> str | None:
        """The role a live, unexpired access token grants."""
        session = self._session_of(access)
        if session is None or session.access[access] <= now:
            return None
        return session.role

    def user_of(self, access: str) -> str | None:
        session = self._session_of(access)
        return session.user if session is not None else None

    def refresh(self, access: str, refresh: str, now: float) -> dict[str, Any]:
        """A new pair for a session's access token (expired or not) and its current refresh token."""
        sid = self._by_access.get(access)
        session = self._sessions.get(sid) if sid is not None else None
        if sid is None or session is None:
            raise SessionRefused("bearer_token", "unknown access token: log in again")
        if session.refresh_expires <= now:
            self._close(sid)
            raise SessionRefused("refresh_expired", "the refresh token has expired: log in again")
        if not hmac.compare_digest(refresh.encode(), session.refresh.encode()):
            self._close(sid)  # a spent refresh token may have been stolen: end the session for everyone
            raise SessionRefused("refresh_token", "the refresh token was spent or is wrong: session closed")
        session.access.pop(access)
        del self._by_access[access]
        return self._issue(sid, session, now)

    def close(self, access: str, refresh: str | None = None) -> str:
        """Log out the session of ``access`` (its user's name); a ``refresh`` given must be its own."""
        sid = self._by_access.get(access)
        session = self._sessions.get(sid) if sid is not None else None
        if sid is None or session is None:
            raise SessionRefused("bearer_token", "unknown access token")
        if refresh is not None and not hmac.compare_digest(refresh.encode(), session.refresh.encode()):
            raise SessionRefused("refresh_token", "the refresh token is not this session's")
        self._close(sid)
        return session.user

    def _session_of(self, access: str) -> _Session | None:
        sid = self._by_access.get(access)
        return self._sessions.get(sid) if sid is not None else None

    def _issue(self, sid: str, session: _Session, now: float) -> dict[str, Any]:
        # an access token past its time is kept only while it is the session's newest: sensuctl
        # refreshes with it after it expired
        for token in [t for t, expires in session.access.items() if expires <= now]:
            del session.access[token]
            del self._by_access[token]
        expires = int(now + self.lifetimes.access)
        access = self._token(session.user, sid, now, expires)
        session.access[access] = expires
        self._by_access[access] = sid
        session.refresh_expires = now + self.lifetimes.refresh
        session.refresh = self._token(session.user, sid, now, int(session.refresh_expires))
        return {"access_token": access, "expires_at": expires, "refresh_token": session.refresh}

    def _token(self, user: str, sid: str, now: float, expires: int) -> str:
        claims = {"sub": user, "exp": expires, "iat": int(now), "jti": secrets.token_hex(16), "sid": sid}
        signed = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
        signature = hmac.new(self._key, signed.encode(), hashlib.sha256).digest()
        return f"{signed}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    def _close(self, sid: str) -> None:
        session = self._sessions.pop(sid)
        for token in session.access:
            del self._by_access[token]

    def _forget_ended(self, now: float) -> None:
        for sid in [s for s, session in self._sessions.items() if session.refresh_expires <= now]:
            self._close(sid)


def _b64(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
