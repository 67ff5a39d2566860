"""Prometheus metrics of one server instance (own registry, so several apps can coexist)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from mentatlab.server.red_metrics import RedCollector, RedMetrics

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                      10.0)


@dataclass
class ServerMetrics:
    """The counters, gauges and histograms exported on ``/metrics``."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.spans_received = Counter(
            "mentatlab_spans_received", "Spans decoded from requests, by receiver",
            ["receiver"], registry=r)
        self.spans_accepted = Counter(
            "mentatlab_spans_accepted", "Spans committed to the store, by receiver",
            ["receiver"], registry=r)
        self.spans_rejected = Counter(
            "mentatlab_spans_rejected", "Spans refused (invalid) or dropped (backpressure)",
            ["receiver", "reason"], registry=r)
        self.requests = Counter(
            "mentatlab_http_requests", "HTTP requests by route template and status",
            ["method", "route", "status"], registry=r)
        self.write_latency_s = Histogram(
            "mentatlab_write_latency_seconds",
            "Seconds from handing a batch to the writer until it is committed",
            buckets=_LATENCY_BUCKETS_S, registry=r)
        self.request_latency_s = Histogram(
            "mentatlab_http_request_duration_seconds", "HTTP request duration in seconds",
            ["route"], buckets=_LATENCY_BUCKETS_S, registry=r)
        self.buffer_depth = Gauge(
            "mentatlab_write_buffer_spans", "Spans waiting for the writer", registry=r)
        self.buffer_bytes = Gauge(
            "mentatlab_write_buffer_bytes", "Bytes (Arrow) of spans waiting for the writer",
            registry=r)
        self.last_insert_s = Gauge(
            "mentatlab_store_insert_last_seconds", "Duration of the writer's newest insert "
            "into the span store (with the write-ahead log: the inserter's), in seconds",
            registry=r)
        self.ingest_workers = Gauge(
            "mentatlab_ingest_workers", "Ingest worker processes serving OTLP/HTTP bodies "
            "(0 before the first body and after ingest_workers_idle_s without one)",
            registry=r)
        self.live_dropped: Collector | None = None
        """``mentatlab_live_dropped_spans_total`` once :meth:`bind_live` ran."""
        self.wal: tuple[Collector, Collector, Collector] | None = None
        """The write-ahead log's disk bytes, pending bytes and insert failures, once
        :meth:`bind_wal` ran (None without a log)."""
        self.live_clients = Gauge(
            "mentatlab_live_clients", "Open WebSocket live-tail connections", registry=r)
        self.live_stats_clients = Gauge(
            "mentatlab_live_stats_clients", "Open WebSocket live-stats connections", registry=r)
        self.live_stats_queries = Counter(
            "mentatlab_live_stats_queries", "Store reads of the live stats stream (one per "
            "filter and interval, shared by its subscribers)", registry=r)
        self.job_leader = Gauge(
            "mentatlab_job_leader", "1 while this process runs the named background job "
            "(leader election on the control store), else 0", ["job"], registry=r)
        self.alerts_recorded = Counter(
            "mentatlab_alerts", "Alerts recorded by this node's evaluator, by rule kind and "
            "state", ["kind", "state"], registry=r)
        self.alert_deliveries = Counter(
            "mentatlab_alert_deliveries", "Notification delivery attempts, by outcome (sent, "
            "retry, failed = given up)", ["outcome"], registry=r)
        self.resolver_passes = Counter(
            "mentatlab_resolver_passes", "Attribution resolver passes run by this process",
            registry=r)
        self.resolver_versions = Counter(
            "mentatlab_resolver_versions", "Span versions the resolver wrote (inherited "
            "attribution or unattributed usage changed)", registry=r)
        self.resolver_pass_seconds = Histogram(
            "mentatlab_resolver_pass_seconds", "Duration of one resolver pass, in seconds",
            buckets=_LATENCY_BUCKETS_S, registry=r)
        self.resolver_stale_reads = Counter(
            "mentatlab_resolver_stale_reads", "Reads answered before the resolver reached "
            "this node's newest commit (it was more than resolve_wait_s behind)", registry=r)
        self.resolver_lag = Gauge(
            "mentatlab_resolver_lag_seconds", "How far the resolver's watermark is behind this "
            "node's newest commit, in seconds (0 on a node that does not run it)", registry=r)
        self.compaction_passes = Counter(
            "mentatlab_compaction_passes", "Compaction passes over closed day partitions (spans "
            "and settled tables) run by this process (storage/compaction.py)", registry=r)
        self.compaction_partitions = Counter(
            "mentatlab_compaction_partitions", "Partitions merged into one part by compaction "
            "(closed days of spans and settled tables; trace_facts whole)", registry=r)
        self.compaction_pending = Gauge(
            "mentatlab_compaction_pending_partitions", "Partitions with several parts the last "
            "compaction pass left for the next (over its bounds)", registry=r)
        self.compaction_pass_seconds = Histogram(
            "mentatlab_compaction_pass_seconds", "Duration of one compaction pass, in seconds",
            buckets=(0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0), registry=r)
        self.retention_rows_deleted = Counter(
            "mentatlab_retention_rows_deleted", "Rows deleted by the retention job from "
            "partitions it kept, by table (governance/retention.py)", ["table"], registry=r)
        self.retention_partitions_dropped = Counter(
            "mentatlab_retention_partitions_dropped", "Whole partitions dropped by the "
            "retention job, by table", ["table"], registry=r)
        self.alert_rule_errors = Counter(
            "mentatlab_alert_rule_errors", "Rule evaluations that failed (logged, retried "
            "next run)", registry=r)
        self.unhandled_errors = Counter(
            "mentatlab_unhandled_errors", "Exceptions raised while serving a request that the "
            "error table does not map (bugs, answered 500 and logged), by exception type",
            ["exception"], registry=r)

        self.rate_limited = Counter(
            "mentatlab_rate_limited", "Requests refused (429) for being over a quota, by kind "
            "(ingest_requests, ingest_spans, queries) and the scope whose limit was hit (key, "
            "org)", ["kind", "scope"], registry=r)
        # guardrail policies (issue 17, server/policies.py)
        self.policy_decisions = Counter(
            "mentatlab_policy_decisions", "Policy decisions on committed spans (ingest and the "
            "resolver's late re-evaluation), by action (block, redact, alert, log)",
            ["action"], registry=r)
        self.red = RedMetrics()
        """RED metrics of ingested spans (server/red_metrics.py): summed over tenants here,
        per tenant on ``/metrics/tenants``."""
        r.register(RedCollector(self.red))

    def bind_buffer_depth(self, read_depth: Callable[[], float]) -> None:
        """Make the buffer gauge read the writer's depth at scrape time."""
        self.buffer_depth.set_function(read_depth)

    def bind_writer(self, read_bytes: Callable[[], float],
                    read_last_insert_s: Callable[[], float]) -> None:
        """Make the buffer-bytes and last-insert gauges read the writer at scrape time."""
        self.buffer_bytes.set_function(read_bytes)
        self.last_insert_s.set_function(read_last_insert_s)

    def bind_workers(self, read_running: Callable[[], float]) -> None:
        """Make the ingest-workers gauge read the running worker count at scrape time."""
        self.ingest_workers.set_function(read_running)

    def bind_live(self, read_dropped: Callable[[], float]) -> None:
        """Export ``mentatlab_live_dropped_spans_total``, read at scrape time.

        Committed spans the live tail's converter dropped (oldest first) when it fell behind.
        """
        self.live_dropped = _ValueCollector(
            "mentatlab_live_dropped_spans", "Committed spans dropped before reaching the live "
            "tail because its converter fell behind (oldest first; ingest is never held up)",
            read_dropped)
        self.registry.register(self.live_dropped)

    def bind_wal(self, read_disk: Callable[[], float], read_pending: Callable[[], float],
                 read_failures: Callable[[], float]) -> None:
        """Export the write-ahead log's gauges and counter, read at scrape time.

        ``mentatlab_wal_disk_bytes`` (segment files on disk), ``mentatlab_wal_pending_bytes``
        (Arrow bytes logged, not yet inserted) and ``mentatlab_wal_insert_failures_total``.
        """
        self.wal = (
            _ValueCollector("mentatlab_wal_disk_bytes", "Bytes of write-ahead log files on "
                            "disk", read_disk, gauge=True),
            _ValueCollector("mentatlab_wal_pending_bytes", "Bytes (Arrow) of acknowledged "
                            "spans logged and not yet inserted into the store", read_pending,
                            gauge=True),
            _ValueCollector("mentatlab_wal_insert_failures", "Failed inserts of logged spans "
                            "(each retried until it succeeds)", read_failures))
        for collector in self.wal:
            self.registry.register(collector)

    def bind_resolver(self, read_lag_s: Callable[[], float]) -> None:
        """Make the resolver-lag gauge read the lag (s) at scrape time."""
        self.resolver_lag.set_function(read_lag_s)

    def bind_forwarder(self, read_stats: Callable[[], Any]) -> None:
        """Export the OTLP forwarder's counters, read at scrape time.

        ``mentatlab_forward_spans_total`` and ``mentatlab_forward_requests_total`` (received
        requests) by ``outcome`` (``sent``, ``dropped`` = queue full, ``failed`` = given
        up), ``mentatlab_forward_batches_total`` (requests sent to the target),
        ``mentatlab_forward_send_errors_total`` (failed attempts, retries included) and the
        gauge ``mentatlab_forward_queue_bytes``.

        Args:
            read_stats: returns a :class:`~mentatlab.exporters.ForwardStats`.
        """
        self.registry.register(_ForwardCollector(read_stats))

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)


class _ForwardCollector(Collector):
    """Prometheus view of a :class:`~mentatlab.exporters.ForwardStats`."""

    def __init__(self, read_stats: Callable[[], Any]) -> None:
        self._read_stats = read_stats

    def collect(self) -> Iterator[Metric]:
        stats = self._read_stats()
        spans = CounterMetricFamily("mentatlab_forward_spans", "Spans forwarded to the OTLP "
                                    "target, by outcome", labels=["outcome"])
        requests = CounterMetricFamily("mentatlab_forward_requests", "Received requests "
                                       "forwarded, by outcome", labels=["outcome"])
        for outcome in ("sent", "dropped", "failed"):
            spans.add_metric([outcome], getattr(stats, f"spans_{outcome}"))
            requests.add_metric([outcome], getattr(stats, f"requests_{outcome}"))
        yield spans
        yield requests
        yield CounterMetricFamily("mentatlab_forward_batches", "Requests sent to the OTLP "
                                  "target (batches)", value=stats.batches_sent)
        yield CounterMetricFamily("mentatlab_forward_send_errors", "Failed send attempts to "
                                  "the OTLP target, retries included", value=stats.send_errors)
        yield GaugeMetricFamily("mentatlab_forward_queue_bytes", "Bytes waiting to be "
                                "forwarded", value=stats.queue_bytes)


class _ValueCollector(Collector):
    """A counter (or gauge) read from a callback at scrape time."""

    def __init__(self, name: str, documentation: str, read: Callable[[], float], *,
                 gauge: bool = False) -> None:
        self._name = name
        self._documentation = documentation
        self._read = read
        self._gauge = gauge

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily if self._gauge else CounterMetricFamily
        yield family(self._name, self._documentation, value=self._read())
