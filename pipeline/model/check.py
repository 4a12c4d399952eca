"""Checks: the configuration operators write (CheckConfig) and the result in an event (Check).

Field names, defaults and which fields Sensu Go always emits follow core/v2 ``check.proto``.
Parts pipeline does not act on (Sensu 5's ``subdue``) are refused in a check's configuration
when set (``UNSUPPORTED``), and kept as plain JSON in an event's check, so that a Sensu event
survives a round trip unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.errors import ValidationError
from pipeline.model.codec import INT32, INT64, JSON, UINT32, field
from pipeline.model.go_float import parse_go_float
from pipeline.model.meta import ObjectMeta, ResourceReference, refuse_other_reference, refuse_unsupported, validate_name
from pipeline.model.metrics import MetricTag
from pipeline.model.secrets import SecretRef, validate_secret_refs
from pipeline.model.subdue import TimeWindowRepeated

METRIC_FORMATS = ("nagios_perfdata", "graphite_plaintext", "influxdb_line", "opentsdb_line", "prometheus_text")

#: ``check.state`` values.
PASSING, FAILING, FLAPPING = "passing", "failing", "flapping"


@dataclass(slots=True)
class CheckHistory:
    """One past result: only its status and when it ran."""

    status: int = field(0, bounds=UINT32)
    executed: int = field(0, bounds=INT64)


#: ``check_hooks`` keys besides the exact exit codes "0" to "255".
HOOK_TYPES = ("ok", "warning", "critical", "unknown", "non-zero")


@dataclass(slots=True)
class HookConfig:
    """A command run on the agent after a check whose status matches (Sensu's ``HookConfig``)."""

    metadata: ObjectMeta = field(factory=ObjectMeta)
    command: str = field("", omitempty=True)
    timeout: int = field(60, bounds=UINT32)
    stdin: bool = field(False)
    runtime_assets: list[str] = field([])

    @property
    def name(self) -> str:
        return self.metadata.name

    def validate(self, path: str = "") -> None:
        at = f"{path}." if path else ""
        validate_name(self.metadata.name, f"{at}metadata.name")
        if not self.command.strip():
            raise ValidationError(f"{at}command", "required")
        if self.timeout <= 0:
            raise ValidationError(f"{at}timeout", f"must be greater than 0, got {self.timeout}")


@dataclass(slots=True)
class Hook(HookConfig):
    """A hook's result inside ``check.hooks``: its configuration plus what it did."""

    duration: float = field(0.0, omitempty=True)
    executed: int = field(0, bounds=INT64)
    issued: int = field(0, bounds=INT64)
    output: str = field("", omitempty=True)
    status: int = field(0, bounds=INT32)


def valid_hook_type(name: str) -> bool:
    # ASCII digits: ``str.isdigit`` also takes ``²`` (which ``int`` refuses) and ``٣`` (which Go's
    # strconv, and so Sensu, refuses)
    return name in HOOK_TYPES or (name.isascii() and name.isdigit() and str(int(name)) == name and int(name) <= 255)


@dataclass(slots=True)
class MetricThresholdRule:
    """``min`` and ``max`` are strings (they may hold tokens); a point outside gives ``status``."""

    min: str = field("")
    max: str = field("")
    status: int = field(0, bounds=UINT32)


@dataclass(slots=True)
class MetricThresholdTag:
    name: str = field("")
    value: str = field("")


@dataclass(slots=True)
class MetricThreshold:
    """Rules for the points named ``name`` (with these tags); ``null_status`` when none is found."""

    name: str = field("")
    tags: list[MetricThresholdTag] = field([])
    thresholds: list[MetricThresholdRule] = field([])
    null_status: int = field(0, bounds=UINT32)

    def validate(self, path: str) -> None:
        if not self.name:
            raise ValidationError(f"{path}.name", "required")
        if not self.thresholds:
            raise ValidationError(f"{path}.thresholds", "at least one rule is required")
        for i, rule in enumerate(self.thresholds):
            if not rule.min and not rule.max:
                raise ValidationError(f"{path}.thresholds[{i}]", "a rule needs min or max")
            for bound in ("min", "max"):
                text = getattr(rule, bound)
                if text and "{{" not in text and parse_go_float(text) is None:  # as Sensu Go parses it
                    raise ValidationError(f"{path}.thresholds[{i}].{bound}", f"expected a number, got {text!r}")


@dataclass(slots=True)
class ProxyRequests:
    """Run the check once per entity matching every ``entity_attributes`` expression, spread over
    ``splay_coverage`` percent of the interval when ``splay`` (Sensu's ``ProxyRequests``)."""

    entity_attributes: list[str] = field([])
    splay: bool = field(False)
    splay_coverage: int = field(0, bounds=UINT32)

    def validate(self, path: str) -> None:
        """Sensu Go's rules; the expressions are compiled where the check is loaded."""
        if self.splay_coverage > 100:
            raise ValidationError(f"{path}.splay_coverage", f"must be between 0 and 100, got {self.splay_coverage}")
        if self.splay and not self.splay_coverage:
            raise ValidationError(f"{path}.splay_coverage", "must be greater than 0 when splay is true")


#: CheckConfig fields accepted in Sensu's shape but refused when set (issue 15 implements them).
CHECK_UNSUPPORTED = ("subdue",)


@dataclass(slots=True)
class CheckConfig:
    """A check as operators define it (the ``spec`` of a ``CheckConfig`` resource)."""

    command: str = field("", omitempty=True)
    handlers: list[str] = field([])
    high_flap_threshold: int = field(0, bounds=UINT32)
    interval: int = field(0, bounds=UINT32)
    low_flap_threshold: int = field(0, bounds=UINT32)
    publish: bool = field(False)
    runtime_assets: list[str] = field([])
    subscriptions: list[str] = field([])
    proxy_entity_name: str = field("")
    check_hooks: list[dict[str, list[str]]] = field([])
    stdin: bool = field(False)
    subdue: JSON = field(None)
    cron: str = field("", omitempty=True)
    ttl: int = field(0, bounds=INT64)
    timeout: int = field(0, bounds=UINT32)
    proxy_requests: ProxyRequests | None = field(None, omitempty=True)
    round_robin: bool = field(False)
    output_metric_format: str = field("")
    output_metric_handlers: list[str] = field([])
    env_vars: list[str] = field([])
    metadata: ObjectMeta = field(factory=ObjectMeta)
    max_output_size: int = field(0, omitempty=True, bounds=INT64)
    discard_output: bool = field(False, omitempty=True)
    secrets: list[SecretRef] = field([])
    output_metric_tags: list[MetricTag] = field([], omitempty=True)
    pipelines: list[ResourceReference] = field([])
    output_metric_thresholds: list[MetricThreshold] = field([], omitempty=True)
    subdues: list[TimeWindowRepeated] = field([], omitempty=True)
    ttl_status: int = field(0, omitempty=True, bounds=UINT32)

    @property
    def name(self) -> str:
        return self.metadata.name

    def validate(self, path: str = "") -> None:
        """Sensu Go's ``CheckConfig.Validate`` rules, with errors naming the field."""

        def at(name: str) -> str:
            return f"{path}.{name}" if path else name

        validate_name(self.metadata.name, at("metadata.name"))
        refuse_unsupported(self, CHECK_UNSUPPORTED, path)
        for i, ref in enumerate(self.pipelines):
            refuse_other_reference(ref, "Pipeline", at(f"pipelines[{i}]"))
        if self.cron and self.interval:
            raise ValidationError(at("cron"), "must not be set together with interval")
        if self.publish and not self.cron and self.interval < 1:
            raise ValidationError(at("interval"), f"must be at least 1 for a published check, got {self.interval}")
        if self.ttl > 0 and (self.ttl <= self.interval or self.ttl < 5):
            raise ValidationError(at("ttl"), f"must be greater than interval and at least 5, got {self.ttl}")
        for i, sub in enumerate(self.subscriptions):
            if not sub:
                raise ValidationError(at(f"subscriptions[{i}]"), "must not be empty")
        if self.low_flap_threshold and self.high_flap_threshold and self.low_flap_threshold >= self.high_flap_threshold:
            raise ValidationError(
                at("low_flap_threshold"),
                f"must be lower than high_flap_threshold ({self.low_flap_threshold} >= {self.high_flap_threshold})",
            )
        if self.output_metric_format and self.output_metric_format not in METRIC_FORMATS:
            raise ValidationError(
                at("output_metric_format"),
                f"expected one of {', '.join(METRIC_FORMATS)}, got {self.output_metric_format!r}",
            )
        if self.max_output_size < 0:
            raise ValidationError(at("max_output_size"), f"must not be negative, got {self.max_output_size}")
        for i, entry in enumerate(self.check_hooks):
            for hook_type in entry:
                if not valid_hook_type(hook_type):
                    raise ValidationError(
                        at(f"check_hooks[{i}].{hook_type}"),
                        f"hook type must be 0-255 or one of {', '.join(HOOK_TYPES)}",
                    )
        for i, threshold in enumerate(self.output_metric_thresholds):
            threshold.validate(at(f"output_metric_thresholds[{i}]"))
        self._validate_backend_scheduled(at)
        validate_secret_refs(self.secrets, path)
        for i, window in enumerate(self.subdues):
            window.validate(at(f"subdues[{i}]"))
        for name in ("interval", "timeout", "high_flap_threshold", "low_flap_threshold"):
            if getattr(self, name) < 0:
                raise ValidationError(at(name), f"must not be negative, got {getattr(self, name)}")

    def _validate_backend_scheduled(self, at: Callable[[str], str]) -> None:
        """Round robin and proxy requests are scheduled by the backend: they need a schedule and a
        subscription to find agents by."""
        if self.proxy_requests is not None:
            self.proxy_requests.validate(at("proxy_requests"))
        if (self.round_robin or self.proxy_requests is not None) and self.publish and not self.subscriptions:
            field_name = "round_robin" if self.round_robin else "proxy_requests"
            raise ValidationError(at("subscriptions"), f"{field_name} needs at least one subscription to run on")


@dataclass(slots=True)
class Check(CheckConfig):
    """A check inside an event: its configuration plus the result and the derived state.

    ``is_flapping_start`` and ``is_flapping_end`` are pipeline's own: they are true on the one
    event where ``state`` becomes ``flapping`` and the one where it stops being ``flapping``.
    """

    duration: float = field(0.0, omitempty=True)
    executed: int = field(0, bounds=INT64)
    history: list[CheckHistory] = field([])
    issued: int = field(0, bounds=INT64)
    output: str = field("")
    state: str = field("", omitempty=True)
    status: int = field(0, bounds=UINT32)
    total_state_change: int = field(0, bounds=UINT32)
    last_ok: int = field(0, bounds=INT64)
    occurrences: int = field(0, bounds=INT64)
    occurrences_watermark: int = field(0, bounds=INT64)
    silenced: list[str] = field([], omitempty=True)
    hooks: list[Hook] = field([], omitempty=True)
    is_silenced: bool = field(False)
    scheduler: str = field("")
    processed_by: str = field("", omitempty=True)
    fallback_pipeline: JSON = field(None, omitempty=True)
    asset_status: list[str] = field([], omitempty=True)
    is_flapping_start: bool = field(False, omitempty=True)
    is_flapping_end: bool = field(False, omitempty=True)

    def validate(self, path: str = "check") -> None:
        validate_name(self.metadata.name, f"{path}.metadata.name")
        if self.status < 0:
            raise ValidationError(f"{path}.status", f"must not be negative, got {self.status}")

    @classmethod
    def from_config(cls, config: CheckConfig) -> Check:
        """A check carrying ``config``'s fields and an empty result (Sensu's ``NewCheck``)."""
        from pipeline.model.codec import decode, encode

        return decode(cls, encode(config))
