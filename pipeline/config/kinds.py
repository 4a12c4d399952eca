"""The kinds a Sensu Go resource file may hold, and what pipeline does with each.

``sensuctl dump all`` writes every kind its backend has. pipeline loads the kinds of
:data:`pipeline.model.resources.RESOURCE_TYPES` and ``Entity`` (core/v2), ``Env`` and ``Secret``
(secrets/v1, from files only), and refuses the others
by name (file, document, kind), saying why: a resource accepted and then ignored would be a
silent "yes". The api_version strings are Sensu Go's own.
"""

from __future__ import annotations

#: core/v2 kinds pipeline does not run, and why (what to do instead).
UNSUPPORTED_CORE = {
    "Role": "access is given by API keys with a role (pipeline key create --role)",
    "RoleBinding": "access is given by API keys with a role (pipeline key create --role)",
    "ClusterRole": "access is given by API keys with a role (pipeline key create --role)",
    "ClusterRoleBinding": "access is given by API keys with a role (pipeline key create --role)",
    "User": "API users are set with the backend's --api-user",
    "APIKey": "API keys are created with pipeline key create",
    "TessenConfig": "pipeline sends no telemetry",
    "Event": "events are sent to the events API, not created from files",
}

#: kinds of the other Sensu Go API groups, by api_version.
UNSUPPORTED_GROUPS = {
    "core/v3": ("EntityConfig", "EntityState", "Namespace", "ResourceTemplate"),
    "secrets/v1": ("VaultProvider", "CyberArkProvider"),
    "federation/v1": ("EtcdReplicator", "Cluster"),
    "searches/v1": ("Search",),
    "bsm/v1": ("ServiceComponent", "RuleTemplate"),
    "authentication/v2": ("Ldap", "ActiveDirectory", "Oidc"),
    "web/v1": ("GlobalConfig",),
    "store/v1": ("PostgresConfig",),
    "pipeline/v1": ("SumoLogicMetricsHandler", "TCPStreamHandler"),
    "licensing/v2": ("LicenseFile",),
}

#: what to say about a whole API group
GROUP_REASONS = {
    "core/v3": "write its core/v2 form (Entity, Namespace)",
    "secrets/v1": "secrets providers are not supported",
    "federation/v1": "pipeline backends share one PostgreSQL, not a federation",
}


def unsupported(kind: str, api_version: str) -> str | None:
    """Why ``kind`` of ``api_version`` is refused, if it is one of Sensu Go's kinds pipeline
    does not support; None for a kind Sensu Go does not have either."""
    if api_version in ("core/v2", "") and kind in UNSUPPORTED_CORE:
        return f"pipeline does not support Sensu Go's {kind} (core/v2): {UNSUPPORTED_CORE[kind]}"
    for group, kinds in UNSUPPORTED_GROUPS.items():
        if kind in kinds and api_version in (group, ""):
            reason = GROUP_REASONS.get(group, "not supported")
            return f"pipeline does not support Sensu Go's {kind} ({group}): {reason}"
    return None
