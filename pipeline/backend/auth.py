"""Who may connect as an agent: users with passwords, or agent tokens. Pure."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any


class AuthenticationError(Exception):
    """The agent's credentials are missing or wrong (the message is safe to send to it)."""


@dataclass(slots=True, frozen=True)
class AgentCredentials:
    """What the backend accepts. With none configured, only loopback agents may connect."""

    users: dict[str, str] = field(default_factory=dict)
    tokens: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.users or self.tokens)

    def authenticate(self, hello: dict[str, Any]) -> str:
        """The name the agent authenticated as (``token`` for a token); raises AuthenticationError."""
        if not self.configured:
            return ""
        token, user, password = hello.get("token"), hello.get("user"), hello.get("password")
        if isinstance(token, str) and token:
            # compare_digest against every token, so that timing says nothing about which matched
            if any(hmac.compare_digest(token.encode(), known.encode()) for known in self.tokens):
                return "token"
            raise AuthenticationError("authentication failed: unknown agent token")
        if isinstance(user, str) and user and isinstance(password, str):
            known = self.users.get(user)
            matches = hmac.compare_digest(password.encode(), (known or "").encode())
            if known is not None and matches:
                return user
            raise AuthenticationError(f"authentication failed for user {user!r}")
        raise AuthenticationError(
            "authentication required: the agent sent no credentials (--user/--password or --token)"
        )


def parse_user(text: str) -> tuple[str, str]:
    """``USER:PASSWORD`` from the command line (raises ValueError naming the problem)."""
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError(f"expected USER:PASSWORD, got {text.split(':')[0]!r}...")
    return user, password
