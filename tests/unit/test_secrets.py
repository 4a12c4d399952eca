"""Secrets: resolving a command's ``secrets`` through the Env provider, the resource files that
declare it, the wire entries that carry values to agents, and the agent's use of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.agent.executor import CheckExecutor
from pipeline.backend.secrets import check_secrets, command_environment
from pipeline.config.loader import load_path, resource_from_document
from pipeline.core.redact import mask_values
from pipeline.core.secrets import resolve
from pipeline.errors import SecretUnavailable, ValidationError
from pipeline.model import CheckConfig, Entity, ObjectMeta
from pipeline.model.codec import decode, encode
from pipeline.model.resources import Handler, Resources
from pipeline.model.secrets import EnvSecretsProvider, Secret, SecretRef
from pipeline.wire.messages import Checks, Execute, decode_message, encode_message
from pipeline.wire.protocol import ProtocolError

ENV = {"API_TOKEN": "t0ken-value", "OTHER": "other-value"}


def resources(*, provider: bool = True, secrets: tuple[Secret, ...] = ()) -> Resources:
    providers = [EnvSecretsProvider(metadata=ObjectMeta(name="env"))] if provider else []
    return Resources(secrets_providers=providers, secrets=list(secrets))


def secret(name: str, id_: str, namespace: str = "default") -> Secret:
    return Secret(metadata=ObjectMeta(name=name, namespace=namespace), id=id_, provider="env")


def test_a_secret_resource_names_the_variable() -> None:
    found = resolve([SecretRef(name="TOKEN", secret="api-token")], resources(secrets=(secret("api-token", "API_TOKEN"),)),
                    "default", ENV)  # fmt: skip
    assert found == {"TOKEN": "t0ken-value"}


def test_without_a_secret_resource_the_env_provider_reads_the_variable_of_that_name() -> None:
    assert resolve([SecretRef(name="T", secret="OTHER")], resources(), "default", ENV) == {"T": "other-value"}


def test_a_secret_resource_of_another_namespace_is_not_used() -> None:
    other = resources(secrets=(secret("OTHER", "API_TOKEN", namespace="ops"),))
    assert resolve([SecretRef(name="T", secret="OTHER")], other, "default", ENV) == {"T": "other-value"}


@pytest.mark.parametrize(
    ("refs", "given", "message"),
    [
        (
            [SecretRef("T", "NOPE")],
            resources(),
            "secret 'T' (NOPE): the backend's environment variable NOPE is not set",
        ),
        (
            [SecretRef("T", "OTHER")],
            resources(provider=False),
            "secret 'T' (OTHER): no Secret resource named 'OTHER' in namespace 'default' (or declare the Env provider",
        ),
        (
            [SecretRef("A", "OTHER"), SecretRef("B", "x")],
            resources(secrets=(secret("x", "UNSET"),)),
            "secret 'B' (x): the backend's environment variable UNSET is not set",
        ),
    ],
)
def test_a_secret_without_a_value_is_an_error_naming_it(refs: list[SecretRef], given: Resources, message: str) -> None:
    with pytest.raises(SecretUnavailable) as error:
        resolve(refs, given, "default", ENV)
    assert str(error.value).startswith(message)
    assert "t0ken" not in str(error.value)


def test_the_env_provider_is_built_in_as_in_sensu_go() -> None:
    """Sensu Go's docs: "The Env secrets provider is automatically created with an empty spec when
    you start your Sensu backend", so their Secret with ``provider: env`` works without an Env document."""
    documented = secret("sensu-ansible-token", "API_TOKEN")
    found = resolve([SecretRef("T", "sensu-ansible-token")], resources(provider=False, secrets=(documented,)),
                    "default", ENV)  # fmt: skip
    assert found == {"T": "t0ken-value"}


def test_no_secrets_need_no_provider() -> None:
    assert resolve([], resources(provider=False), "default", ENV) == {}


def test_a_handler_environment_has_its_secrets_after_its_env_vars() -> None:
    env = command_environment({"PATH": "/bin"}, ["T=from-env-vars", "X=1"], [SecretRef("T", "OTHER")], resources(),
                              "default", environ=ENV)  # fmt: skip
    assert env == {"PATH": "/bin", "T": "other-value", "X": "1"}


def test_check_secrets_travel_beside_the_checks_and_only_over_tls() -> None:
    check = CheckConfig(metadata=ObjectMeta(name="tok", namespace="default"), secrets=[SecretRef("T", "OTHER")])
    plain = CheckConfig(metadata=ObjectMeta(name="plain", namespace="default"))
    told: list[str] = []
    found = check_secrets([check, plain], resources(), tls=True, environ=ENV)
    assert found == {"tok": {"env": {"T": "other-value"}}}
    refused = check_secrets([check], resources(), tls=False, environ=ENV, on_unavailable=lambda c, r: told.append(r))
    assert "over TLS only" in refused["tok"]["error"]
    assert len(told) == 1
    assert "other-value" not in repr(encode(check))


def test_values_in_output_are_masked_longest_first() -> None:
    assert mask_values("a t0ken-value and t0ken", ["t0ken", "t0ken-value", "ab"]) == "a REDACTED and REDACTED"
    assert mask_values("1 2 3", ["1"]) == "1 2 3"  # too short to tell from ordinary output


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        ([{"name": "", "secret": "x"}], r"spec\.secrets\[0\]\.name: expected an environment variable name"),
        ([{"name": "A-B", "secret": "x"}], r"spec\.secrets\[0\]\.name: expected an environment variable name"),
        ([{"name": "T", "secret": ""}], r"spec\.secrets\[0\]\.secret: required"),
        ([{"name": "T", "secret": "a"}, {"name": "T", "secret": "b"}], r"spec\.secrets\[1\]\.name: 'T' is set twice"),
    ],
)
def test_secrets_entries_are_validated(refs: list[dict[str, str]], message: str) -> None:
    check = decode(CheckConfig, {"metadata": {"name": "c"}, "command": "true", "interval": 60, "secrets": refs})
    with pytest.raises(ValidationError, match=message):
        check.validate("spec")


def test_only_pipe_handlers_take_secrets() -> None:
    handler = Handler(metadata=ObjectMeta(name="h"), type="tcp", secrets=[SecretRef("T", "x")])
    with pytest.raises(ValidationError, match=r"secrets: only a pipe handler's command has an environment"):
        handler.validate()


ENV_PROVIDER = "---\ntype: Env\napi_version: secrets/v1\nmetadata:\n  name: env\nspec: {}\n"
SECRET = "---\ntype: Secret\napi_version: secrets/v1\nmetadata: {name: t, namespace: default}\nspec: {id: A, provider: env}\n"


def test_sensu_gos_env_provider_and_secret_load_from_files(tmp_path: Path) -> None:
    (tmp_path / "s.yml").write_text(ENV_PROVIDER + SECRET)
    loaded = load_path(tmp_path)
    assert loaded.errors == []
    assert [p.metadata.name for p in loaded.resources.secrets_providers] == ["env"]
    assert [(s.metadata.name, s.id, s.provider) for s in loaded.resources.secrets] == [("t", "A", "env")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "---\ntype: VaultProvider\napi_version: secrets/v1\nmetadata: {name: v}\nspec: {}\n",
            "pipeline does not support Sensu Go's VaultProvider (secrets/v1): secrets providers are not supported",
        ),
        (
            "---\ntype: CyberArkProvider\napi_version: secrets/v1\nmetadata: {name: v}\nspec: {}\n",
            "pipeline does not support Sensu Go's CyberArkProvider (secrets/v1)",
        ),
        (ENV_PROVIDER.replace("name: env", "name: other"), "metadata.name: the Env provider is named 'env'"),
        (SECRET.replace("provider: env", "provider: vault"), "spec.provider: expected 'env'"),
        (SECRET.replace("id: A, ", ""), "spec.id: required"),
        (ENV_PROVIDER.replace("secrets/v1", "core/v2"), "api_version: expected 'secrets/v1', got 'core/v2'"),
    ],
)
def test_other_secrets_kinds_and_mistakes_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "s.yml").write_text(text)
    (error,) = load_path(tmp_path).errors
    assert message in str(error)


def test_the_api_does_not_take_secrets_kinds() -> None:
    document = {"type": "Env", "api_version": "secrets/v1", "metadata": {"name": "env"}, "spec": {}}
    with pytest.raises(ValidationError, match="read from the backend's config directory only"):
        resource_from_document(document)


def test_wire_entries_are_checked() -> None:
    def secrets_of(message: Checks | Execute) -> Any:
        decoded = decode_message(encode_message(message))
        assert isinstance(decoded, type(message))
        return decoded.secrets

    message = Checks((), (), secrets={"tok": {"env": {"T": "v"}}, "bad": {"error": "why"}})
    assert secrets_of(message) == {"tok": {"env": {"T": "v"}}, "bad": {"error": "why"}}
    assert secrets_of(Checks((), ())) == {}
    assert secrets_of(Execute({}, ())) is None
    for wrong in ({"env": {"T": 1}}, {"env": {}, "error": "x"}, {"other": 1}, "text"):
        with pytest.raises(ProtocolError, match=r"checks\.secrets\.tok: expected"):
            decode_message({**encode_message(Checks((), ())), "secrets": {"tok": wrong}})


@pytest.mark.trio
async def test_an_agent_without_the_values_reports_it_and_does_not_run_the_command(tmp_path: Path) -> None:
    executor = CheckExecutor(Entity(metadata=ObjectMeta(name="web1", namespace="default")), {"PATH": "/usr/bin:/bin"})
    marker = tmp_path / "ran"
    check = CheckConfig(metadata=ObjectMeta(name="tok", namespace="default"), command=f"touch {marker}",
                        secrets=[SecretRef("T", "x")])  # fmt: skip
    event = await executor.execute(check, 100)
    assert event.check is not None
    assert event.check.status == 3
    assert "the backend has not sent them" in event.check.output
    executor.secrets = {"tok": {"error": "error while getting the check's secrets: because"}}
    event = await executor.execute(check, 100)
    assert event.check is not None
    assert (event.check.status, event.check.output) == (
        3,
        "error while getting the check's secrets: because",
    )
    assert not marker.exists()
    executor.secrets = {"tok": {"env": {"T": "abcdef"}}}
    check.command = 'printf "%s" "${#T}"; touch ' + str(marker)
    event = await executor.execute(check, 100)
    assert event.check is not None
    assert (event.check.status, event.check.output) == (0, "6")
