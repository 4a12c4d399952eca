"""The values of a command's ``secrets``, from the backend's providers.

Pure: the backend's environment is a parameter. The steps are Sensu Go's
``ProviderManager.SubSecrets``: no provider at all is an error; each entry's ``secret`` names a
``Secret`` resource of the command's namespace, which names the provider and the ``id``; the
``Env`` provider reads the environment variable ``id``. pipeline's shortcut: with an ``Env``
provider, a ``secret`` that names no ``Secret`` resource is read as the variable of that name.
An unset variable is an error naming the entry, never an empty value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pipeline.errors import SecretUnavailable
from pipeline.model.meta import DEFAULT_NAMESPACE
from pipeline.model.resources import Resources
from pipeline.model.secrets import ENV_PROVIDER, SecretRef

NO_PROVIDER = "no secrets provider is defined (declare the Env provider: type: Env, api_version: secrets/v1)"


def _locate(ref: SecretRef, resources: Resources, namespace: str) -> tuple[str, str]:
    """(provider, id) of ``ref``: its Secret resource's, else the Env provider's variable of that name."""
    for secret in resources.secrets:
        if secret.metadata.name == ref.secret and (secret.metadata.namespace or DEFAULT_NAMESPACE) == namespace:
            return secret.provider, secret.id
    return ENV_PROVIDER, ref.secret


def resolve(
    refs: Iterable[SecretRef], resources: Resources, namespace: str, environ: Mapping[str, str]
) -> dict[str, str]:
    """``{name: value}`` for ``refs``; raises SecretUnavailable naming the first entry without one."""
    refs = list(refs)
    if not refs:
        return {}
    providers = {provider.metadata.name for provider in resources.secrets_providers}
    values = {}
    for ref in refs:
        if not providers:
            raise SecretUnavailable(ref.name, ref.secret, NO_PROVIDER)
        provider, key = _locate(ref, resources, namespace)
        if provider not in providers:
            raise SecretUnavailable(ref.name, ref.secret, f"no secrets provider {provider!r}")
        value = environ.get(key)
        if value is None:
            raise SecretUnavailable(ref.name, ref.secret, f"the backend's environment variable {key} is not set")
        values[ref.name] = value
    return values
