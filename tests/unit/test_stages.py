"""The stage adapters: each stage is done by the first adapter that can, an added adapter is a
peer of the built-in ones, what no adapter can do is named and counted, and an event is
encoded once per form whatever the number of filters, mutators and handlers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.backend import stages
from pipeline.backend.handlers import HandlerRunner
from pipeline.config import Resources
from pipeline.core.stages import FilterOutcome, StageRef
from pipeline.metrics import BackendMetrics
from pipeline.model import Event
from pipeline.model.deadletter import DeadLetter
from pipeline.model.forms import EventForms
from pipeline.model.pipeline import EventFilter, Mutator
from pipeline.model.resources import Handler
from tests.unit.test_pipeline_runner import ENV, event, meta, pipe, sample


def test_each_form_is_computed_once_and_matches_the_model() -> None:
    e = event("h")
    forms = EventForms(e)
    assert forms.data is forms.data
    assert forms.data == e.to_dict()
    assert forms.json is forms.json
    assert forms.json == e.to_json()


async def test_three_filters_and_three_handlers_encode_the_event_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[str] = []
    to_dict = Event.to_dict

    def counting(self: Event) -> dict[str, object]:
        encoded.append(self.id)
        return to_dict(self)

    monkeypatch.setattr(Event, "to_dict", counting)
    web1 = EventFilter(metadata=meta("web1"), action="allow", expressions=["event.entity.metadata.name == 'web1'"])
    filters = ["is_incident", "not_silenced", "web1"]
    handlers = [pipe(f"h{i}", f"cat > {tmp_path / str(i)}", filters=filters) for i in range(3)]
    metrics = BackendMetrics.create()
    resources = Resources(handlers=handlers, filters=[web1])
    await HandlerRunner(lambda: resources, metrics, ENV).handle(event("h0", "h1", "h2"))
    assert encoded == ["7d3a1f7e-0a52-4a53-9a5e-9f8f2a1d0c11"]  # was six: one per expression, one per handler
    bodies = {(tmp_path / str(i)).read_bytes() for i in range(3)}
    monkeypatch.undo()
    assert bodies == {event("h0", "h1", "h2").to_json()}
    assert sample(metrics, "pipeline_filter_runs_total", filter="web1") == 3


async def test_a_handler_type_no_adapter_takes_is_named_and_counted(tmp_path: Path) -> None:
    grpc = Handler(metadata=meta("ext"), type="grpc", max_attempts=1)  # built in code: not validated
    metrics = BackendMetrics.create()
    letters: list[DeadLetter] = []

    async def keep(letter: DeadLetter) -> None:
        letters.append(letter)

    await HandlerRunner(lambda: Resources(handlers=[grpc]), metrics, ENV, dead_letters=keep).handle(event("ext"))
    assert sample(metrics, "pipeline_handler_failures_total", handler="ext", reason="unsupported") == 1
    (letter,) = letters
    assert letter.error == "handler 'ext': no adapter for type 'grpc'"


async def test_a_mutator_type_no_adapter_takes_is_named_and_counted(tmp_path: Path) -> None:
    lua = Mutator(metadata=meta("lua"), type="lua", eval="return 1")  # refused by validation: built here
    resources = Resources(handlers=[pipe("h", f"cat > {tmp_path / 'out'}", mutator="lua")], mutators=[lua])
    metrics = BackendMetrics.create()
    await HandlerRunner(lambda: resources, metrics, ENV).handle(event("h"))
    assert sample(metrics, "pipeline_mutator_failures_total", mutator="lua", reason="unsupported") == 1
    assert not (tmp_path / "out").exists()


class OnlyDisk:
    """A filter adapter added by a test: EventFilters whose name starts with ``disk-``."""

    @classmethod
    def of(cls, resources: Resources, services: stages.StageServices) -> OnlyDisk:
        return cls()

    def can_filter(self, ref: StageRef) -> bool:
        return ref.name.startswith("disk-")

    async def filter(self, ref: StageRef, forms: EventForms, now: float) -> FilterOutcome:
        return FilterOutcome(forms.data["check"]["metadata"]["name"] == "disk")


class Upper:
    """A mutator adapter added by a test: Mutators of type ``upper``."""

    def __init__(self, services: stages.StageServices) -> None:
        self.services = services

    def can_mutate(self, ref: StageRef) -> bool:
        found = self.services.resources().mutator(ref.name, ref.namespace)
        return found is not None and found.type == "upper"

    async def mutate(self, ref: StageRef, forms: EventForms) -> bytes:
        return forms.json.upper()


async def test_an_added_filter_and_mutator_adapter_are_peers_of_the_built_ins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stages, "FILTER_ADAPTERS", [*stages.FILTER_ADAPTERS, OnlyDisk.of])
    monkeypatch.setattr(stages, "MUTATOR_ADAPTERS", [Upper, *stages.MUTATOR_ADAPTERS])
    upper = Mutator(metadata=meta("loud"), type="upper")
    resources = Resources(
        handlers=[pipe("h", f"cat > {tmp_path / 'out'}", filters=["is_incident", "disk-only"], mutator="loud")],
        mutators=[upper],
    )
    metrics = BackendMetrics.create()
    await HandlerRunner(lambda: resources, metrics, ENV).handle(event("h"))
    assert (tmp_path / "out").read_bytes() == event("h").to_json().upper()
    assert sample(metrics, "pipeline_filter_runs_total", filter="disk-only") == 1
    assert sample(metrics, "pipeline_mutator_runs_total", mutator="loud") == 1


async def test_a_failing_handler_keeps_the_end_of_its_output_where_the_traceback_names_the_exception(
    tmp_path: Path,
) -> None:
    script = tmp_path / "crash.py"
    script.write_text("import sys\nprint('noise ' * 200, file=sys.stderr)\nraise KeyError('missing_api_token')\n")
    crash = pipe("crash", f"python3 {script}")
    crash.max_attempts = 1
    letters: list[DeadLetter] = []

    async def keep(letter: DeadLetter) -> None:
        letters.append(letter)

    await HandlerRunner(lambda: Resources(handlers=[crash]), BackendMetrics.create(), ENV, dead_letters=keep).handle(
        event("crash")
    )
    (letter,) = letters
    assert letter.error.startswith("exited 1: …")
    assert letter.error.endswith("KeyError: 'missing_api_token'")
    assert len(letter.error) <= len("exited 1: …") + stages.LOGGED_OUTPUT


def test_short_output_is_kept_whole() -> None:
    assert stages.output_tail("  boom\n") == "boom"
    assert stages.output_tail("a" * 10 + "b" * 5, size=5) == "…bbbbb"
