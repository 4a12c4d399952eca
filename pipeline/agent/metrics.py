"""The agent's Prometheus metrics, on its own injectable registry (the backend's are in
:mod:`pipeline.metrics`, with the collectors both use)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipeline.metrics import (
    DURATION_BUCKETS,
    ChannelDepthCollector,
    HttpMetrics,
    SpoolCollector,
    registered,
    registry_with_queues,
)


@dataclass(slots=True)
class AgentMetrics:
    registry: CollectorRegistry
    queues: ChannelDepthCollector
    checks_executed: Counter
    check_duration: Histogram
    checks_skipped: Counter
    checks_subdued: Counter
    checks_unschedulable: Counter
    events_sent: Counter
    events_acked: Counter
    events_rejected: Counter
    connected: Gauge
    connection_failures: Counter
    events_unacked: Gauge
    metric_extraction_errors: Counter
    spool: SpoolCollector
    spool_dropped: Counter
    spool_damaged: Counter
    spool_write_failures: Counter
    spool_timeouts: Counter
    keepalives_sent: Counter
    config_reloads: Counter
    socket_results: Counter
    socket_errors: Counter
    http: HttpMetrics
    events_set_aside: Counter
    events_too_large: Counter
    api_unknown_parameters: Counter
    execute_requests_refused: Counter
    source_events: Counter
    source_failures: Counter
    source_up: Gauge

    @classmethod
    def create(
        cls, registry: CollectorRegistry | None = None, queues: ChannelDepthCollector | None = None
    ) -> AgentMetrics:
        """Metrics on ``registry`` (a new one by default); pass ``queues`` to share one queue collector."""
        r, queues = registry_with_queues(registry, queues)
        return cls(
            registry=r,
            queues=queues,
            checks_executed=Counter("pipeline_agent_checks_executed", "Checks run", ["check", "status"], registry=r),
            check_duration=Histogram(
                "pipeline_agent_check_duration_seconds",
                "Check run time",
                ["check"],
                buckets=DURATION_BUCKETS,
                registry=r,
            ),
            checks_skipped=Counter(
                "pipeline_agent_checks_skipped",
                "Scheduled runs skipped because the last was still running",
                ["check"],
                registry=r,
            ),
            checks_subdued=Counter(
                "pipeline_agent_checks_subdued",
                "Scheduled runs not made because they fell inside one of the check's subdues windows",
                ["check"],
                registry=r,
            ),
            checks_unschedulable=Counter(
                "pipeline_agent_checks_unschedulable",
                "Checks whose schedule had no next run (their task ended; the other checks go on)",
                ["check"],
                registry=r,
            ),
            events_sent=Counter("pipeline_agent_events_sent", "Events sent to the backend", registry=r),
            events_acked=Counter("pipeline_agent_events_acked", "Events acknowledged by the backend", registry=r),
            events_rejected=Counter("pipeline_agent_events_rejected", "Events the backend rejected", registry=r),
            connected=Gauge("pipeline_agent_connected", "1 while connected to a backend", registry=r),
            connection_failures=Counter(
                "pipeline_agent_connection_failures", "Failed or lost backend connections", registry=r
            ),
            events_unacked=Gauge("pipeline_agent_events_unacked", "Events sent and not yet acknowledged", registry=r),
            metric_extraction_errors=Counter(
                "pipeline_agent_metric_extraction_errors",
                "Check output lines metric extraction could not use",
                ["check", "format"],
                registry=r,
            ),
            spool=registered(SpoolCollector(), r),
            spool_dropped=Counter(
                "pipeline_agent_spool_dropped", "Oldest events dropped because the spool was full", registry=r
            ),
            spool_damaged=Counter(
                "pipeline_agent_spool_damaged_segments",
                "Spool segments found damaged at start (the events after the damage in each are lost)",
                registry=r,
            ),
            spool_write_failures=Counter(
                "pipeline_agent_spool_write_failures",
                "Spool writes that failed (a full or failing disk); a batch of events is tried again",
                registry=r,
            ),
            spool_timeouts=Counter(
                "pipeline_agent_spool_timeouts",
                "Local programs' events (agent API, client socket) the spool did not take in time: refused, "
                "and not spooled",
                registry=r,
            ),
            keepalives_sent=Counter("pipeline_agent_keepalives_sent", "Keepalives sent to the backend", registry=r),
            config_reloads=Counter(
                "pipeline_agent_config_reloads", "Reloads of the agent's configuration file", ["result"], registry=r
            ),
            socket_results=Counter(
                "pipeline_agent_socket_results", "Check results taken from the client socket", ["transport"], registry=r
            ),
            socket_errors=Counter(
                "pipeline_agent_socket_errors", "Client socket input refused", ["transport", "reason"], registry=r
            ),
            http=HttpMetrics.create(r, "pipeline_agent_http"),
            events_set_aside=Counter(
                "pipeline_agent_events_set_aside",
                "Events moved out of the spool into the set-aside list instead of being sent",
                ["reason"],
                registry=r,
            ),
            events_too_large=Counter(
                "pipeline_agent_events_too_large",
                "Events over the maximum event size, by where they entered and what became of them",
                ["source", "action"],
                registry=r,
            ),
            api_unknown_parameters=Counter(
                "pipeline_agent_api_unknown_parameters",
                "Agent API requests refused for a query parameter their path does not take, by route",
                ["path"],
                registry=r,
            ),
            execute_requests_refused=Counter(
                "pipeline_agent_execute_requests_refused",
                "Check execution requests from the backend that did not decode (check, hooks or proxy entity)",
                registry=r,
            ),
            source_events=Counter(
                "pipeline_agent_source_events", "Events a source of the agent produced", ["source"], registry=r
            ),
            source_failures=Counter(
                "pipeline_agent_source_failures",
                "Times a source of the agent failed (raised or ended) and was restarted",
                ["source"],
                registry=r,
            ),
            source_up=Gauge("pipeline_agent_source_up", "1 while a source of the agent runs", ["source"], registry=r),
        )
