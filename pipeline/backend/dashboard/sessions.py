"""The dashboard's login sessions: a random id in an HttpOnly, SameSite=Strict cookie, and on
the server who logged in, their role, the session's CSRF token and when it ends. Bounded: the
oldest session is ended when :data:`MAX_SESSIONS` are open."""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "pipeline_session"
#: how long a dashboard login lasts (Sensu's refresh token's 12 hours)
LIFETIME = 12 * 3600.0
MAX_SESSIONS = 10_000


@dataclass(slots=True, frozen=True)
class Viewer:
    """Who is looking: ``principal`` (a user name, or ``key <first characters>``), ``role``
    (``admin`` may act; ``viewer`` may only look), the session's ``csrf`` token."""

    principal: str
    role: str
    csrf: str
    expires: float

    @property
    def may_act(self) -> bool:
        return self.role == "admin"

    def csrf_matches(self, token: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), token.encode())


class DashboardSessions:
    def __init__(self, lifetime: float = LIFETIME, limit: int = MAX_SESSIONS) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self._open: OrderedDict[str, Viewer] = OrderedDict()
        #: told the reason of each refused dashboard request (a counter: pipeline_api_unauthorized)
        self.refused: Callable[[str], None] | None = None

    def refuse(self, reason: str) -> None:
        if self.refused is not None:
            self.refused(reason)

    def __len__(self) -> int:
        return len(self._open)

    def open(self, principal: str, role: str, now: float) -> str:
        """A new session's id (the cookie's value)."""
        sid = secrets.token_urlsafe(32)
        self._open[sid] = Viewer(principal, role, secrets.token_urlsafe(32), now + self.lifetime)
        while len(self._open) > self.limit:
            self._open.popitem(last=False)
        return sid

    def viewer(self, sid: str, now: float) -> Viewer | None:
        found = self._open.get(sid) if sid else None
        if found is None:
            return None
        if found.expires <= now:
            del self._open[sid]
            return None
        return found

    def close(self, sid: str) -> None:
        self._open.pop(sid, None)
