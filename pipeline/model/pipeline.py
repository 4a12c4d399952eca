"""The resources of the backend pipeline besides handlers: filters, mutators, pipelines, silences."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import ValidationError
from pipeline.model.codec import INT64, UINT32, field
from pipeline.model.meta import (
    ObjectMeta,
    ResourceReference,
    refuse_other_reference,
    validate_name,
)
from pipeline.model.secrets import SecretRef, validate_secret_refs
from pipeline.model.time_window import TimeWindowWhen

#: Filters every backend knows, with Sensu Go's meaning (plus pipeline's ``fatigue``).
BUILTIN_FILTERS = ("is_incident", "not_silenced", "has_metrics", "fatigue")
#: Mutators every backend knows.
BUILTIN_MUTATORS = ("json", "only_check_output")
FILTER_ACTIONS = ("allow", "deny")
MUTATOR_TYPES = ("pipe", "javascript", "template")


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@dataclass(slots=True)
class EventFilter:
    """Sensu Go's ``EventFilter``: ``expressions`` in JavaScript over ``event``, ``when`` time
    windows checked first, ``runtime_assets`` JavaScript libraries loaded before the expressions."""

    metadata: ObjectMeta = field(factory=ObjectMeta)
    action: str = field("")
    expressions: list[str] = field([])
    runtime_assets: list[str] = field([])
    when: TimeWindowWhen | None = field(None, omitempty=True)

    def validate(self, path: str = "") -> None:
        validate_name(self.metadata.name, _at(path, "metadata.name"))
        if self.metadata.name in BUILTIN_FILTERS:
            raise ValidationError(_at(path, "metadata.name"), f"{self.metadata.name!r} is a built-in filter")
        if self.action not in FILTER_ACTIONS:
            raise ValidationError(_at(path, "action"), f"expected allow or deny, got {self.action!r}")
        if not self.expressions:
            raise ValidationError(_at(path, "expressions"), "at least one expression is required")
        if self.when is not None:
            self.when.validate(_at(path, "when"))


@dataclass(slots=True)
class Mutator:
    """Sensu Go's ``Mutator`` (``pipe``), and pipeline's ``template`` (a sandboxed Jinja2 template)."""

    metadata: ObjectMeta = field(factory=ObjectMeta)
    command: str = field("", omitempty=True)
    timeout: int = field(0, bounds=UINT32)
    env_vars: list[str] = field([])
    runtime_assets: list[str] = field([])
    secrets: list[SecretRef] = field([])
    type: str = field("", omitempty=True)
    eval: str = field("", omitempty=True)
    #: pipeline's own: the template of a ``template`` mutator
    template: str = field("", omitempty=True)

    @property
    def kind(self) -> str:
        return self.type or "pipe"

    def validate(self, path: str = "") -> None:
        validate_name(self.metadata.name, _at(path, "metadata.name"))
        if self.metadata.name in BUILTIN_MUTATORS:
            raise ValidationError(_at(path, "metadata.name"), f"{self.metadata.name!r} is a built-in mutator")
        validate_secret_refs(self.secrets, path)
        if self.secrets and self.kind != "pipe":
            raise ValidationError(_at(path, "secrets"), "only a pipe mutator's command has an environment")
        if self.runtime_assets and self.kind == "template":
            raise ValidationError(
                _at(path, "runtime_assets"),
                "a template mutator runs nothing of assets (pipe: their programs; javascript: their lib/*.js)",
            )
        if self.kind not in MUTATOR_TYPES:
            raise ValidationError(_at(path, "type"), f"expected pipe, javascript or template, got {self.type!r}")
        if self.kind == "pipe" and not self.command.strip():
            raise ValidationError(_at(path, "command"), "required for a pipe mutator")
        if self.kind == "javascript" and not self.eval.strip():
            raise ValidationError(_at(path, "eval"), "required for a javascript mutator")
        if self.eval and self.kind != "javascript":  # only javascript mutators evaluate it
            raise ValidationError(_at(path, "eval"), "only javascript mutators take it (type: javascript)")
        if self.kind == "template" and not self.template:
            raise ValidationError(_at(path, "template"), "required for a template mutator")
        if self.timeout < 0:
            raise ValidationError(_at(path, "timeout"), f"must not be negative, got {self.timeout}")


@dataclass(slots=True)
class PipelineWorkflow:
    name: str = field("")
    filters: list[ResourceReference] = field([], omitempty=True)
    mutator: ResourceReference | None = field(None, omitempty=True)
    handler: ResourceReference | None = field(None)

    def validate(self, path: str) -> None:
        validate_name(self.name, _at(path, "name"))
        if self.handler is None or not self.handler.name:
            raise ValidationError(_at(path, "handler"), "required")
        refuse_other_reference(self.handler, "Handler", _at(path, "handler"))
        if self.mutator is not None:
            refuse_other_reference(self.mutator, "Mutator", _at(path, "mutator"))
        for i, ref in enumerate(self.filters):
            refuse_other_reference(ref, "EventFilter", _at(path, f"filters[{i}]"))


@dataclass(slots=True)
class Pipeline:
    """Sensu Go's ``Pipeline``: workflows of filters, a mutator and a handler."""

    metadata: ObjectMeta = field(factory=ObjectMeta)
    workflows: list[PipelineWorkflow] = field([])

    def validate(self, path: str = "") -> None:
        validate_name(self.metadata.name, _at(path, "metadata.name"))
        if not self.workflows:
            raise ValidationError(_at(path, "workflows"), "at least one workflow is required")
        seen = set()
        for i, workflow in enumerate(self.workflows):
            workflow.validate(_at(path, f"workflows[{i}]"))
            if workflow.name in seen:
                raise ValidationError(_at(path, f"workflows[{i}].name"), f"{workflow.name!r} is used twice")
            seen.add(workflow.name)


#: Sensu Go's SubscriptionNameRegex; ASCII as Go's ``\w`` is (see NAME_PATTERN).
_SUBSCRIPTION = re.compile(r"\A[\w.\-]+(:?[\w.\-]+)?\Z", re.ASCII)


def silence_name(subscription: str, check: str) -> str:
    """Sensu Go's name of a silence: ``<subscription|*>:<check|*>``."""
    return f"{subscription or '*'}:{check or '*'}"


@dataclass(slots=True)
class Silenced:
    """Sensu Go's ``Silenced`` entry; its name is derived from subscription and check."""

    metadata: ObjectMeta = field(factory=ObjectMeta)
    expire: int = field(0, bounds=INT64)
    expire_on_resolve: bool = field(False)
    creator: str = field("")
    check: str = field("")
    reason: str = field("")
    subscription: str = field("")
    begin: int = field(0, bounds=INT64)
    expire_at: int = field(0, bounds=INT64)

    @property
    def derived_name(self) -> str:
        return silence_name(self.subscription, self.check)

    def validate(self, path: str = "") -> None:
        if not self.subscription and not self.check:
            raise ValidationError(path, "a silence needs a subscription, a check, or both")
        if self.subscription in ("", "*") and self.check in ("", "*"):
            raise ValidationError(path, "'*:*' would silence everything; name a subscription or a check")
        if self.subscription not in ("", "*") and not _SUBSCRIPTION.match(self.subscription):
            raise ValidationError(_at(path, "subscription"), f"invalid subscription {self.subscription!r}")
        if self.check not in ("", "*"):
            validate_name(self.check, _at(path, "check"))
        if self.metadata.name and self.metadata.name != self.derived_name:
            raise ValidationError(
                _at(path, "metadata.name"), f"a silence is named <subscription>:<check>: expected {self.derived_name!r}"
            )
        if self.expire < -1:
            raise ValidationError(_at(path, "expire"), f"seconds, or -1 for none; got {self.expire}")
