"""Prometheus metrics of both daemons, each on its own injectable registry.

Queue depths are read from the channels at scrape time by :class:`ChannelDepthCollector`, so
no stage keeps depth bookkeeping by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.containment import ContainmentCollector

DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ChannelDepthCollector(Collector):
    """``pipeline_queue_depth{queue=...}`` and ``pipeline_queue_capacity`` from live channels."""

    def __init__(self) -> None:
        self._channels: dict[str, trio.MemorySendChannel[object]] = {}

    def watch(self, name: str, channel: trio.MemorySendChannel[object]) -> None:
        self._channels[name] = channel

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("pipeline_queue_depth", "Items waiting in an internal queue", labels=["queue"])
        capacity = GaugeMetricFamily("pipeline_queue_capacity", "Capacity of an internal queue", labels=["queue"])
        for name, channel in self._channels.items():
            stats = channel.statistics()
            depth.add_metric([name], stats.current_buffer_used)
            capacity.add_metric([name], stats.max_buffer_size)
        yield depth
        yield capacity


def registered(collector: SpoolCollector, registry: CollectorRegistry) -> SpoolCollector:
    registry.register(collector)
    return collector


def registry_with_queues(
    registry: CollectorRegistry | None, queues: ChannelDepthCollector | None
) -> tuple[CollectorRegistry, ChannelDepthCollector]:
    registry = registry if registry is not None else CollectorRegistry()
    if queues is None:
        queues = ChannelDepthCollector()
        registry.register(queues)
        # Once per registry, like the queues: ``pipeline up`` shares one between its daemons.
        registry.register(ContainmentCollector())
    return registry, queues


class SpoolCollector(Collector):
    """``pipeline_agent_spool_events`` and ``_bytes``, read from the spool at scrape time."""

    def __init__(self) -> None:
        self._count: Callable[[], int] = lambda: 0
        self._bytes: Callable[[], int] = lambda: 0

    def watch(self, count: Callable[[], int], size: Callable[[], int]) -> None:
        self._count, self._bytes = count, size

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "pipeline_agent_spool_events", "Events in the spool (not yet acknowledged)", self._count()
        )
        yield GaugeMetricFamily("pipeline_agent_spool_bytes", "Bytes of events in the spool", self._bytes())


@dataclass(slots=True)
class HttpMetrics:
    connections: Gauge
    responses: Counter
    errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, prefix: str) -> HttpMetrics:
        """``prefix`` keeps two servers apart on one registry (``pipeline up``: backend and agent)."""
        return cls(
            connections=Gauge(f"{prefix}_connections", "HTTP connections open", registry=registry),
            responses=Counter(f"{prefix}_responses", "HTTP responses sent", ["code"], registry=registry),
            errors=Counter(
                f"{prefix}_errors", "HTTP requests refused or failed, by reason", ["reason"], registry=registry
            ),
        )


@dataclass(slots=True)
class StoreMetrics:
    """The store service's: failed calls and the outbox of handler work."""

    failures: Counter
    outbox_jobs: Gauge
    outbox_resumed: Counter
    outbox_unreadable: Counter
    unreadable: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> StoreMetrics:
        return cls(
            failures=Counter("pipeline_store_failures", "Store calls that failed", ["operation"], registry=registry),
            outbox_jobs=Gauge("pipeline_outbox_jobs", "Events whose handlers have not all run yet", registry=registry),
            outbox_resumed=Counter(
                "pipeline_outbox_resumed", "Handler jobs found unfinished at start and run again", registry=registry
            ),
            outbox_unreadable=Counter(
                "pipeline_outbox_unreadable", "Handler jobs whose stored event could not be read", registry=registry
            ),
            unreadable=Counter(
                "pipeline_store_unreadable",
                "Stored records that no longer load (events, silences, entities ...), skipped where read; each once",
                ["kind"],
                registry=registry,
            ),
        )


@dataclass(slots=True)
class BackendMetrics:
    registry: CollectorRegistry
    queues: ChannelDepthCollector
    events_received: Counter
    events_rejected: Counter
    events_duplicate: Counter
    events_stored: Counter
    events_processed: Counter
    store_batches: Histogram
    store_batches_split: Counter
    store_refused: Counter
    handler_runs: Counter
    handler_failures: Counter
    handler_duration: Histogram
    handler_retries: Counter
    dead_letters: Counter
    check_secrets_unavailable: Counter
    events_silenced: Counter
    silences_active: Gauge
    filter_runs: Counter
    filter_errors: Counter
    filter_duration: Histogram
    events_filtered: Counter
    mutator_runs: Counter
    mutator_failures: Counter
    mutator_duration: Histogram
    push_requests: Counter
    fields_ignored: Counter
    api_unknown_parameters: Counter
    api_busy: Counter
    api_unauthorized: Counter
    push_refused: Counter
    agents_connected: Gauge
    transport_errors: Counter
    auth_failures: Counter
    transport_events_refused: Counter
    config_reloads: Counter
    api_auth_failures: Counter
    health_store_failures: Counter
    sessions_evicted: Counter
    dashboard_stream_dropped: Counter
    keepalives_received: Counter
    keepalive_failures: Counter
    ttl_expired: Counter
    entities_registered: Counter
    entities_deregistered: Counter
    proxies_registered: Counter
    events_renumbered: Counter
    http: HttpMetrics
    store: StoreMetrics
    resources_skipped: Counter
    resources_dangling: Gauge
    scheduled_requests: Counter
    scheduled_skipped: Counter
    dashboard_refused: Counter
    backends_live: Gauge
    events_superseded: Counter
    changes_followed: Counter
    jobs_adopted: Counter
    executions_forwarded: Counter
    backend_changes: Counter
    keepalives_not_owned: Counter

    @classmethod
    def create(
        cls, registry: CollectorRegistry | None = None, queues: ChannelDepthCollector | None = None
    ) -> BackendMetrics:
        """Metrics on ``registry`` (a new one by default); pass ``queues`` to share one queue collector."""
        r, queues = registry_with_queues(registry, queues)
        return cls(
            registry=r,
            queues=queues,
            events_received=Counter("pipeline_events_received", "Events received", ["source"], registry=r),
            events_rejected=Counter("pipeline_events_rejected", "Events rejected as invalid", ["source"], registry=r),
            events_duplicate=Counter("pipeline_events_duplicate", "Replayed events dropped by id", registry=r),
            events_stored=Counter("pipeline_events_stored", "Check events written to the store", registry=r),
            events_processed=Counter("pipeline_events_processed", "Events passed to the handlers", registry=r),
            store_batches=Histogram(
                "pipeline_store_batch_size",
                "Events per store transaction",
                buckets=(1, 10, 50, 100, 250, 500),
                registry=r,
            ),
            store_batches_split=Counter(
                "pipeline_store_batches_split",
                "Batches the store failed, written again one event at a time (an event it refuses fails alone)",
                registry=r,
            ),
            store_refused=Counter(
                "pipeline_store_events_refused",
                "Events the store refused for what they hold: not stored, set aside or refused to their submitter",
                registry=r,
            ),
            handler_runs=Counter("pipeline_handler_runs", "Handler executions", ["handler"], registry=r),
            handler_failures=Counter(
                "pipeline_handler_failures", "Handler executions that failed", ["handler", "reason"], registry=r
            ),
            handler_duration=Histogram(
                "pipeline_handler_duration_seconds",
                "Handler run time",
                ["handler"],
                buckets=DURATION_BUCKETS,
                registry=r,
            ),
            handler_retries=Counter(
                "pipeline_handler_retries", "Handler attempts after a failure", ["handler"], registry=r
            ),
            dead_letters=Counter(
                "pipeline_dead_letters", "Events handlers failed to take after every attempt", ["handler"], registry=r
            ),
            check_secrets_unavailable=Counter(
                "pipeline_check_secrets_unavailable",
                "Checks sent to an agent with the reason their secrets could not be given instead of them",
                registry=r,
            ),
            events_silenced=Counter("pipeline_events_silenced", "Check events a silence applied to", registry=r),
            silences_active=Gauge("pipeline_silences", "Silences held (active or waiting to begin)", registry=r),
            filter_runs=Counter("pipeline_filter_runs", "Events a filter was applied to", ["filter"], registry=r),
            filter_errors=Counter(
                "pipeline_filter_errors", "Filter expressions or annotations that failed", ["filter"], registry=r
            ),
            filter_duration=Histogram(
                "pipeline_filter_duration_seconds",
                "Filter evaluation time",
                ["filter"],
                buckets=(0.00001, 0.0001, 0.001, 0.01, 0.1),
                registry=r,
            ),
            events_filtered=Counter("pipeline_events_filtered", "Events a filter stopped", ["filter"], registry=r),
            mutator_runs=Counter("pipeline_mutator_runs", "Mutator executions", ["mutator"], registry=r),
            mutator_failures=Counter(
                "pipeline_mutator_failures", "Mutator executions that failed", ["mutator", "reason"], registry=r
            ),
            mutator_duration=Histogram(
                "pipeline_mutator_duration_seconds",
                "Mutator run time",
                ["mutator"],
                buckets=DURATION_BUCKETS,
                registry=r,
            ),
            api_unauthorized=Counter(
                "pipeline_api_unauthorized", "API requests refused for their credentials", ["reason"], registry=r
            ),
            api_unknown_parameters=Counter(
                "pipeline_api_unknown_parameters",
                "API requests refused for a query parameter their path does not take, by route",
                ["path"],
                registry=r,
            ),
            api_busy=Counter(
                "pipeline_api_busy", "Submissions answered 503 because the pipeline was full", ["source"], registry=r
            ),
            fields_ignored=Counter(
                "pipeline_api_fields_ignored", "Unknown fields dropped from API bodies (events, resources)", registry=r
            ),
            push_requests=Counter("pipeline_push_requests", "Change event pushes received", ["format"], registry=r),
            push_refused=Counter(
                "pipeline_push_refused", "Change event pushes refused", ["format", "reason"], registry=r
            ),
            agents_connected=Gauge("pipeline_agents_connected", "Agents connected to the transport", registry=r),
            transport_errors=Counter(
                "pipeline_transport_errors", "Transport connections closed on a protocol error", ["reason"], registry=r
            ),
            auth_failures=Counter(
                "pipeline_transport_auth_failures", "Agent handshakes refused for their credentials", registry=r
            ),
            transport_events_refused=Counter(
                "pipeline_transport_events_refused",
                "Agent events refused: another namespace, another agent's entity, or not a proxy",
                ["reason"],
                registry=r,
            ),
            config_reloads=Counter(
                "pipeline_config_reloads", "Reloads of the configuration directory", ["result"], registry=r
            ),
            api_auth_failures=Counter(
                "pipeline_auth_failures",
                "HTTP logins and API or ingest keys refused, and attempts refused while throttled",
                ["reason"],
                registry=r,
            ),
            health_store_failures=Counter(
                "pipeline_health_store_failures",
                "Store probes of /health that failed or timed out",
                ["reason"],
                registry=r,
            ),
            sessions_evicted=Counter(
                "pipeline_auth_sessions_evicted",
                "Login sessions closed to make room for a new one (at the cap of sessions held)",
                registry=r,
            ),
            dashboard_stream_dropped=Counter(
                "pipeline_dashboard_stream_dropped",
                "Change notices the dashboard's live stream dropped: the oldest of a slow browser's "
                "(slow_browser), or a stream refused at the cap of open streams (too_many_streams)",
                ["reason"],
                registry=r,
            ),
            keepalives_received=Counter("pipeline_keepalives_received", "Keepalives received from agents", registry=r),
            executions_forwarded=Counter(
                "pipeline_executions_forwarded",
                "Check executions for agents connected to another backend: sent, delivered, agent_gone, unreadable",
                ["outcome"],
                registry=r,
            ),
            jobs_adopted=Counter(
                "pipeline_jobs_adopted", "Handler jobs of a dead backend taken over by this one", registry=r
            ),
            changes_followed=Counter(
                "pipeline_changes_followed",
                "Kinds of record read again because a backend sharing the store changed them",
                ["kind"],
                registry=r,
            ),
            events_superseded=Counter(
                "pipeline_events_superseded",
                "Failures the backend made (keepalive, ttl) dropped because a newer result came first",
                registry=r,
            ),
            backends_live=Gauge(
                "pipeline_backends_live",
                "Backends sharing the store whose lease is current, this one included",
                registry=r,
            ),
            backend_changes=Counter(
                "pipeline_backend_changes", "Changes of the set of live backends (entities change owner)", registry=r
            ),
            keepalives_not_owned=Counter(
                "pipeline_liveness_not_owned",
                "Silences noticed here and left to the entity's owning backend",
                registry=r,
            ),
            keepalive_failures=Counter(
                "pipeline_keepalive_failures",
                "Failing keepalive events emitted for silent agents",
                ["status"],
                registry=r,
            ),
            ttl_expired=Counter(
                "pipeline_check_ttl_expired", "Failing results emitted for checks past their ttl", registry=r
            ),
            entities_registered=Counter("pipeline_entities_registered", "Entities seen for the first time", registry=r),
            entities_deregistered=Counter(
                "pipeline_entities_deregistered", "Entities removed on deregistration", registry=r
            ),
            proxies_registered=Counter(
                "pipeline_proxy_entities_registered", "Proxy entities registered from their first event", registry=r
            ),
            events_renumbered=Counter(
                "pipeline_api_events_renumbered",
                "Events submitted through the API with an id already used, given a new one (a new result)",
                registry=r,
            ),
            http=HttpMetrics.create(r, "pipeline_http"),
            store=StoreMetrics.create(r),
            resources_skipped=Counter(
                "pipeline_resources_skipped",
                "Stored resources that no longer load, skipped at start",
                ["kind"],
                registry=r,
            ),
            resources_dangling=Gauge(
                "pipeline_resources_dangling_references",
                "Names in the running resources that point at no resource, by the kind of the resource naming it",
                ["kind"],
                registry=r,
            ),
            scheduled_requests=Counter(
                "pipeline_scheduled_requests",
                "Executions of round robin and proxy checks the backend asked agents for",
                ["check"],
                registry=r,
            ),
            scheduled_skipped=Counter(
                "pipeline_scheduled_skipped",
                "Round robin and proxy check executions not asked for: no agent connected (no_agent), no entity"
                " matching (no_entity), an entity the expressions failed on (entity_error), a check whose schedule"
                " had no next run (unschedulable: its schedule ends)",
                ["reason"],
                registry=r,
            ),
            dashboard_refused=Counter(
                "pipeline_dashboard_refused",
                "Dashboard forms and actions refused (a field at fault, an unknown silence or dead letter), by form",
                ["form"],
                registry=r,
            ),
        )
