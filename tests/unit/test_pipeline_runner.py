"""Events through their workflows: filters, mutators, tcp/udp/pipe handlers, sets, retries, isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from pipeline.assets.cache import AssetCache, AssetMetrics
from pipeline.backend.handlers import HandlerRunner
from pipeline.config import Resources
from pipeline.metrics import BackendMetrics
from pipeline.model import Check, CheckHistory, Entity, Event, ObjectMeta
from pipeline.model.asset import Asset
from pipeline.model.meta import ResourceReference
from pipeline.model.pipeline import EventFilter, Mutator, Pipeline, PipelineWorkflow
from pipeline.model.resources import Handler, HandlerSocket
from tests.asset_support import asset_server, sha512, tarball

ENV = {"PATH": "/usr/bin:/bin"}


def meta(name: str) -> ObjectMeta:
    return ObjectMeta(name=name, namespace="default")


def pipe(name: str, command: str, **kwargs: Any) -> Handler:
    return Handler(metadata=meta(name), type="pipe", command=command, **kwargs)


def event(*handlers: str, status: int = 2, output: str = "disk is full\n") -> Event:
    return Event(
        timestamp=1_800_000_000,
        entity=Entity(entity_class="agent", metadata=meta("web1")),
        check=Check(metadata=meta("disk"), status=status, output=output, handlers=list(handlers),
                    history=[CheckHistory(status, 0)]),
        metadata=ObjectMeta(namespace="default"),
        id="7d3a1f7e-0a52-4a53-9a5e-9f8f2a1d0c11",
    )  # fmt: skip


def sample(metrics: BackendMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_tcp_and_udp_handlers_write_the_mutated_body_once(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def tcp_server(stream: trio.SocketStream) -> None:
        received.append(b"".join([chunk async for chunk in stream]))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, tcp_server, 0)
        tcp_port = listeners[0].socket.getsockname()[1]
        udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await udp.bind(("127.0.0.1", 0))
        resources = Resources(
            handlers=[
                Handler(metadata=meta("logstash"), type="tcp", socket=HandlerSocket("127.0.0.1", tcp_port),
                        mutator="shout"),
                Handler(metadata=meta("statsd"), type="udp", socket=HandlerSocket("127.0.0.1", udp.getsockname()[1]),
                        mutator="only_check_output"),
            ],
            mutators=[Mutator(metadata=meta("shout"), command="tr a-z A-Z")],
        )  # fmt: skip
        metrics = BackendMetrics.create()
        await HandlerRunner(lambda: resources, metrics, ENV).handle(event("logstash", "statsd"))
        datagram = await udp.recv(65536)
        udp.close()
        nursery.cancel_scope.cancel()
    assert datagram == b"disk is full\n"
    (body,) = received
    assert body.startswith(b'{"TIMESTAMP":1800000000,')  # the event JSON, through the pipe mutator
    assert sample(metrics, "pipeline_mutator_runs_total", mutator="shout") == 1


async def test_a_set_with_a_failing_member_still_runs_the_others(tmp_path: Path) -> None:
    out = tmp_path / "out"
    resources = Resources(handlers=[
        Handler(metadata=meta("ops"), type="set", handlers=["broken", "good", "bad-mutator"]),
        pipe("broken", "exit 3", max_attempts=1),
        pipe("good", f"cat > {out}"),
        pipe("bad-mutator", f"cat > {tmp_path / 'never'}", mutator="fails"),
    ], mutators=[Mutator(metadata=meta("fails"), command="echo nope; exit 1")])  # fmt: skip
    metrics = BackendMetrics.create()
    await HandlerRunner(lambda: resources, metrics, ENV).handle(event("ops"))
    assert Event.from_json(out.read_bytes()).check_name == "disk"
    assert not (tmp_path / "never").exists()
    assert sample(metrics, "pipeline_handler_failures_total", handler="broken", reason="exit_status") == 1
    assert sample(metrics, "pipeline_mutator_failures_total", mutator="fails", reason="exit_status") == 1


async def test_filters_stop_only_their_own_workflow(tmp_path: Path) -> None:
    resources = Resources(
        handlers=[pipe("paged", f"cat > {tmp_path / 'paged'}", filters=["is_incident", "not-web"]),
                  pipe("logged", f"cat > {tmp_path / 'logged'}")],
        filters=[EventFilter(metadata=meta("not-web"), action="deny",
                             expressions=["event.entity.name.indexOf('web') === 0"])],
    )  # fmt: skip
    metrics = BackendMetrics.create()
    await HandlerRunner(lambda: resources, metrics, ENV).handle(event("paged", "logged"))
    assert (tmp_path / "logged").exists()
    assert not (tmp_path / "paged").exists()
    assert sample(metrics, "pipeline_events_filtered_total", filter="not-web") == 1
    assert sample(metrics, "pipeline_filter_runs_total", filter="is_incident") == 1


async def test_a_pipeline_named_by_the_event_runs_its_workflows(tmp_path: Path) -> None:
    resources = Resources(
        handlers=[pipe("file", f"cat >> {tmp_path / 'out'}")],
        pipelines=[Pipeline(metadata=meta("incidents"), workflows=[
            PipelineWorkflow(name="raw", filters=[ResourceReference(name="is_incident")],
                             handler=ResourceReference(name="file")),
            PipelineWorkflow(name="text", mutator=ResourceReference(name="only_check_output"),
                             handler=ResourceReference(name="file")),
        ])],
    )  # fmt: skip
    e = event()
    e.pipelines = [ResourceReference(name="incidents", type="Pipeline", api_version="core/v2")]
    await HandlerRunner(lambda: resources, BackendMetrics.create(), ENV).handle(e)
    written = (tmp_path / "out").read_bytes()
    assert b"disk is full\n" in written
    assert b'"check":{' in written


async def test_a_failing_handler_is_retried_with_backoff_until_it_succeeds_or_gives_up(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    flaky = f"echo x >> {attempts}; test $(wc -l < {attempts}) -ge 2"  # fails once, then works
    resources = Resources(handlers=[pipe("flaky", flaky), pipe("down", "exit 1", max_attempts=4)])
    metrics = BackendMetrics.create()
    await HandlerRunner(lambda: resources, metrics, ENV, retry_base=0.01).handle(event("flaky", "down"))
    assert attempts.read_text().count("x") == 2
    assert sample(metrics, "pipeline_handler_runs_total", handler="flaky") == 2
    assert sample(metrics, "pipeline_handler_retries_total", handler="flaky") == 1
    assert sample(metrics, "pipeline_handler_runs_total", handler="down") == 4
    assert sample(metrics, "pipeline_handler_failures_total", handler="down", reason="exit_status") == 4


async def test_a_template_mutator_shapes_the_body(tmp_path: Path) -> None:
    template = "{{ event.entity.metadata.name }}/{{ event.check.metadata.name }} is {{ event.check.status }}: "
    template += "{{ event.check.output | trim }} ({{ event.check.nothing_here | default('n/a') }})"
    resources = Resources(
        handlers=[pipe("chat", f"cat > {tmp_path / 'chat'}", mutator="short"),
                  pipe("never", f"cat > {tmp_path / 'never'}", mutator="broken", max_attempts=1)],
        mutators=[Mutator(metadata=meta("short"), type="template", template=template),
                  Mutator(metadata=meta("broken"), type="template", template="{{ 1 / 0 }}")],
    )  # fmt: skip
    metrics = BackendMetrics.create()
    await HandlerRunner(lambda: resources, metrics, ENV).handle(event("chat", "never"))
    assert (tmp_path / "chat").read_text() == "web1/disk is 2: disk is full (n/a)"
    assert not (tmp_path / "never").exists()
    assert sample(metrics, "pipeline_mutator_failures_total", mutator="broken", reason="template") == 1


async def test_a_javascript_mutator_as_sensu_go_runs_it(tmp_path: Path) -> None:
    """Sensu Go 6's ``type: javascript``: a returned string is the body; a changed ``event`` with
    nothing returned is the event's JSON; a throw or a runaway fails the mutator, counted."""
    body = "return JSON.stringify({check: event.check.name, status: event.check.status, region: REGION})"
    resources = Resources(
        handlers=[pipe("body", f"cat > {tmp_path / 'body'}", mutator="summary"),
                  pipe("edited", f"cat > {tmp_path / 'edited'}", mutator="tagged"),
                  pipe("thrown", f"cat > {tmp_path / 'thrown'}", mutator="throws", max_attempts=1),
                  pipe("runaway", f"cat > {tmp_path / 'runaway'}", mutator="spins", max_attempts=1)],
        mutators=[Mutator(metadata=meta("summary"), type="javascript", eval=body, env_vars=["REGION=eu"]),
                  Mutator(metadata=meta("tagged"), type="javascript", eval="event.check.output = 'edited'"),
                  Mutator(metadata=meta("throws"), type="javascript", eval="throw new Error('no')"),
                  Mutator(metadata=meta("spins"), type="javascript", eval="while (true) {}", timeout=1)],
    )  # fmt: skip
    metrics = BackendMetrics.create()
    with trio.fail_after(20):
        await HandlerRunner(lambda: resources, metrics, ENV).handle(event("body", "edited", "thrown", "runaway"))
    assert (tmp_path / "body").read_text() == '{"check":"disk","status":2,"region":"eu"}'
    assert Event.from_json((tmp_path / "edited").read_bytes()).check.output == "edited"  # type: ignore[union-attr]
    assert not (tmp_path / "thrown").exists()
    assert not (tmp_path / "runaway").exists()
    for name in ("throws", "spins"):
        assert sample(metrics, "pipeline_mutator_failures_total", mutator=name, reason="script") == 1


async def test_pipe_handlers_and_mutators_run_the_programs_of_their_assets(tmp_path: Path) -> None:
    """Sensu Go's runtime_assets on the backend: fetched once into the backend's cache, verified,
    ``bin`` on PATH; an asset that cannot be had fails the workflow naming it, counted."""
    data = tarball({"bin/shout": b"#!/bin/sh\ntr a-z A-Z\n", "bin/keep": b'#!/bin/sh\ncat > "$1"\n'})
    (tmp_path / "tools.tgz").write_bytes(data)
    tools = Asset(metadata=meta("tools"), url=str(tmp_path / "tools.tgz"), sha512=sha512(data))
    broken = Asset(metadata=meta("broken"), url=str(tmp_path / "tools.tgz"), sha512="0" * 128)
    resources = Resources(
        handlers=[pipe("kept", f"keep {tmp_path / 'kept'}", mutator="loud", runtime_assets=["tools"]),
                  pipe("never", f"keep {tmp_path / 'never'}", runtime_assets=["broken"], max_attempts=1)],
        mutators=[Mutator(metadata=meta("loud"), type="pipe", command="shout", runtime_assets=["tools"])],
        assets=[tools, broken],
    )  # fmt: skip
    metrics = BackendMetrics.create()
    cache = AssetCache(tmp_path / "assets", lambda: {}, AssetMetrics.create(metrics.registry, "pipeline_backend"))
    with trio.fail_after(20):
        await HandlerRunner(lambda: resources, metrics, ENV, asset_cache=cache).handle(event("kept", "never"))
    assert (
        (tmp_path / "kept").read_text().startswith('{"TIMESTAMP":1800000000,')
    )  # the mutator's asset, then the handler's
    assert not (tmp_path / "never").exists()
    assert sample(metrics, "pipeline_handler_failures_total", handler="never", reason="asset") == 1


JS_LIBRARY = b"""
function is_production(event) { return event.entity.labels.environment === 'production'; }
"""
# Sensu's fatigue-check-filter asset declares the function this way; the asset's own wins
OWN_FATIGUE = b"function fatigue_check(event) { return event.check.output === 'let me through'; }\n"
HEADLINE = b"function headline(event) { return event.check.name.toUpperCase() + ' on ' + event.entity.name; }\n"


async def test_filters_and_javascript_mutators_run_the_javascript_of_their_assets(tmp_path: Path) -> None:
    """Sensu Go's runtime_assets of EventFilters and javascript mutators: every lib/**/*.js of the
    asset (fetched once over HTTP, verified) runs before the expressions and the eval. A filter
    whose asset cannot be had runs without it, as in Sensu Go, its failing expressions skipped and
    counted; a mutator whose asset cannot be had fails its workflow, naming the asset."""
    libraries = tarball({"lib/env.js": JS_LIBRARY, "lib/fatigue/fatigue_check.js": OWN_FATIGUE})
    formats = tarball({"lib/headline.js": HEADLINE})
    with asset_server({"/filters.tgz": libraries, "/formats.tgz": formats}) as server:
        resources = Resources(
            filters=[
                EventFilter(metadata=meta("production"), action="allow", expressions=["is_production(event)"],
                            runtime_assets=["filter-lib"]),
                EventFilter(metadata=meta("own-fatigue"), action="allow", expressions=["fatigue_check(event)"],
                            runtime_assets=["filter-lib"]),
                EventFilter(metadata=meta("unreachable"), action="allow", expressions=["is_production(event)"],
                            runtime_assets=["broken"]),
            ],
            mutators=[Mutator(metadata=meta("headline"), type="javascript", eval="return headline(event);",
                              runtime_assets=["format-lib"]),
                      Mutator(metadata=meta("headless"), type="javascript", eval="return headline(event);",
                              runtime_assets=["broken"])],
            handlers=[
                pipe("prod", f"cat >> {tmp_path / 'prod'}; echo >> {tmp_path / 'prod'}",
                     filters=["production", "own-fatigue"], mutator="headline"),
                pipe("anyway", f"cat > {tmp_path / 'anyway'}", filters=["unreachable"], mutator="only_check_output"),
                pipe("never", f"cat > {tmp_path / 'never'}", mutator="headless", max_attempts=1),
            ],
            assets=[
                Asset(metadata=meta("filter-lib"), url=f"{server.url}/filters.tgz", sha512=sha512(libraries)),
                Asset(metadata=meta("format-lib"), url=f"{server.url}/formats.tgz", sha512=sha512(formats)),
                Asset(metadata=meta("broken"), url=f"{server.url}/filters.tgz", sha512="0" * 128),
            ],
        )  # fmt: skip
        metrics = BackendMetrics.create()
        cache = AssetCache(tmp_path / "assets", lambda: {}, AssetMetrics.create(metrics.registry, "pipeline_backend"))
        runner = HandlerRunner(lambda: resources, metrics, ENV, asset_cache=cache)
        production = {"environment": "production"}
        with trio.fail_after(20):
            for labels, output in [(production, "let me through"), ({}, "let me through"), (production, "no")]:
                sent = event("prod", "anyway", "never", output=output)
                assert sent.entity is not None
                sent.entity.metadata.labels = dict(labels)
                await runner.handle(sent)
    assert (tmp_path / "prod").read_text() == "DISK on web1\n"  # production and let through: only the first
    assert (tmp_path / "anyway").read_text() == "no"  # the filter's expression failed: skipped, so it passes
    assert not (tmp_path / "never").exists()
    # filter-lib once; broken's download fails its checksum, and is tried again each time it is needed (6)
    assert server.count("/filters.tgz") == 7
    assert server.count("/formats.tgz") == 1
    assert sample(metrics, "pipeline_filter_errors_total", filter="unreachable") == 6  # the asset and the expression
    assert sample(metrics, "pipeline_mutator_failures_total", mutator="headless", reason="asset") == 3
