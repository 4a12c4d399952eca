"""Secrets: what a check, handler or mutator asks for, and where the backend finds it.

As in Sensu Go: a command's ``secrets`` entry ``{name: TOKEN, secret: ansible-token}`` names a
``Secret`` resource (secrets/v1, ``spec: {id, provider}``), whose provider gives the value; the
value is put into the command's environment as ``TOKEN``. The one provider is Sensu Go's
built-in ``Env`` (secrets/v1, named ``env``): the ``id`` is an environment variable of the
backend. pipeline's shortcut: with an ``Env`` provider, a ``secret`` that names no ``Secret``
resource is the environment variable of that name. Values live only in memory: they are
resolved when a command needs them (:mod:`pipeline.backend.secrets`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import ValidationError
from pipeline.model.codec import field
from pipeline.model.meta import ObjectMeta

#: The ``api_version`` of Sensu Go's secrets kinds.
SECRETS_API_VERSION = "secrets/v1"
#: The name Sensu Go gives its one ``Env`` provider.
ENV_PROVIDER = "env"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(slots=True)
class SecretRef:
    """One ``secrets`` entry of a check, handler or mutator (Sensu's core/v2 ``Secret``)."""

    name: str = field("")
    secret: str = field("")


def validate_secret_refs(refs: list[SecretRef], path: str) -> None:
    """Each entry names an environment variable (once) and a secret."""
    at = f"{path}." if path else ""
    seen: set[str] = set()
    for i, ref in enumerate(refs):
        if not _ENV_NAME.fullmatch(ref.name):
            raise ValidationError(f"{at}secrets[{i}].name", f"expected an environment variable name, got {ref.name!r}")
        if ref.name in seen:
            raise ValidationError(f"{at}secrets[{i}].name", f"{ref.name!r} is set twice")
        seen.add(ref.name)
        if not ref.secret:
            raise ValidationError(f"{at}secrets[{i}].secret", "required")


@dataclass(slots=True)
class EnvSecretsProvider:
    """Sensu Go's built-in ``Env`` secrets provider (its spec is empty)."""

    metadata: ObjectMeta = field(factory=ObjectMeta)

    def validate(self, path: str = "") -> None:
        if self.metadata.name != ENV_PROVIDER:
            raise ValidationError(
                "metadata.name", f"the Env provider is named {ENV_PROVIDER!r}, got {self.metadata.name!r}"
            )


@dataclass(slots=True)
class Secret:
    """Sensu Go's ``Secret``: which provider holds the value, under which ``id``."""

    metadata: ObjectMeta = field(factory=ObjectMeta)
    id: str = field("")
    provider: str = field("")

    def validate(self, path: str = "") -> None:
        at = f"{path}." if path else ""
        if not self.id:
            raise ValidationError(f"{at}id", "required")
        if self.provider != ENV_PROVIDER:
            raise ValidationError(
                f"{at}provider",
                f"expected {ENV_PROVIDER!r} (the Env provider; others are not supported), got {self.provider!r}",
            )
