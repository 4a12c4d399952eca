"""The values of a command's ``secrets``, from the backend's providers.

Pure: the backend's environment is a parameter. The steps are Sensu Go's
``ProviderManager.SubSecrets``: each entry's ``secret`` names a ``Secret`` resource of the
command's namespace, which names the provider and the ``id``; the ``Env`` provider reads the
environment variable ``id``. As in Sensu Go, the ``Env`` provider is built in ("automatically
created with an empty spec when you start your Sensu backend"): a ``Secret`` with ``provider:
env`` needs no ``Env`` document. pipeline's shortcut, only where an ``Env`` document is declared
(declaring it opts in): a ``secret`` that names no ``Secret`` resource is read as the variable
of that name. An unset variable is an error naming the entry, never an empty value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pipeline.errors import SecretUnavailable
from pipeline.model.meta import DEFAULT_NAMESPACE
from pipeline.model.resources import Resources
from pipeline.model.secrets import ENV_PROVIDER, SecretRef

#: The providers every backend has without a document declaring them (Sensu Go's Env).
BUILT_IN_PROVIDERS = frozenset({ENV_PROVIDER})


def no_secret(name: str, namespace: str) -> str:
    return (f"no Secret resource named {name!r} in namespace {namespace!r} (or declare the Env provider, type: Env, "
            f"api_version: secrets/v1, to read the backend's environment variable {name} directly)")  # fmt: skip


def _locate(ref: SecretRef, resources: Resources, namespace: str, declared: set[str]) -> tuple[str, str]:
    """(provider, id) of ``ref``: its Secret resource's, else, with a declared Env provider, the
    variable of that name. Raises SecretUnavailable when neither."""
    for secret in resources.secrets:
        if secret.metadata.name == ref.secret and (secret.metadata.namespace or DEFAULT_NAMESPACE) == namespace:
            return secret.provider, secret.id
    if ENV_PROVIDER not in declared:
        raise SecretUnavailable(ref.name, ref.secret, no_secret(ref.secret, namespace))
    return ENV_PROVIDER, ref.secret


def resolve(
    refs: Iterable[SecretRef], resources: Resources, namespace: str, environ: Mapping[str, str]
) -> dict[str, str]:
    """``{name: value}`` for ``refs``; raises SecretUnavailable naming the first entry without one."""
    refs = list(refs)
    if not refs:
        return {}
    declared = {provider.metadata.name for provider in resources.secrets_providers}
    providers = declared | BUILT_IN_PROVIDERS
    values = {}
    for ref in refs:
        provider, key = _locate(ref, resources, namespace, declared)
        if provider not in providers:
            raise SecretUnavailable(ref.name, ref.secret, f"no secrets provider {provider!r}")
        value = environ.get(key)
        if value is None:
            raise SecretUnavailable(ref.name, ref.secret, f"the backend's environment variable {key} is not set")
        values[ref.name] = value
    return values
