"""``mentatlab.init`` and ``mentatlab.shutdown``: set up the OpenTelemetry SDK for MentatLab.

One :class:`~opentelemetry.sdk.trace.TracerProvider` per process, created by the first
:func:`init` and made the global provider (so OTel instrumentations report through it).
If the program already installed an SDK provider, MentatLab adds its span processor to
that one instead. MentatLab's processor is swappable: calling :func:`init` again replaces
the exporter, tenancy and metering settings in place (the ``Resource`` — service name —
of the global provider is fixed by the first call, as OTel providers are immutable there;
MentatLab's own spans follow a changed service name through a private provider).

The processor puts tenancy and attribution on *every* span of the provider, including
spans from auto-instrumentations: ``mentat.org_id``/``mentat.project_id`` from
:func:`init`, every ``mentat.*`` baggage entry of the span's parent context (which wins),
and the agent, workflow, run, session, user, customer and prompt version of the parent
span (:mod:`mentatlab.sdk.attribution`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from mentatlab.sdk._safety import handle_internal_errors, log_internal_error
from mentatlab.sdk._sampler import Sampler, get_sampler
from mentatlab.sdk.attribution import apply_attribution
from mentatlab.sdk.config import SDKConfig, resolve_config
from mentatlab.sdk.exporter import CountingExporter, ExportStats
from mentatlab.sdk.meters import install_loop_hook
from mentatlab.sdk.propagation import extract_env

__all__ = ["SDKState", "export_stats", "get_state", "init", "shutdown"]

logger = logging.getLogger("mentatlab.sdk")
_SCOPE = "mentatlab"


class _MentatSpanProcessor(SpanProcessor):
    """Adds tenancy and attribution to every span; forwards to the current export processor."""

    def __init__(self) -> None:
        self.inner: SpanProcessor | None = None
        self.exporter: CountingExporter | None = None
        self.static_attributes: dict[str, str] = {}
        self.num_handed_spans = 0
        """Spans handed to ``inner`` since it was installed (for queue-drop accounting)."""
        self._count_lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            apply_attribution(span, parent_context, self.static_attributes)
        except Exception:
            log_internal_error()
        inner = self.inner
        if inner is not None:
            inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        inner = self.inner
        if inner is not None:
            with self._count_lock:
                self.num_handed_spans += 1
            inner.on_end(span)
        elif self.exporter is not None:
            self.exporter.count_dropped(1)

    def shutdown(self) -> None:
        inner, self.inner = self.inner, None
        if inner is not None:
            inner.shutdown()
            self._count_queue_drops()

    def _count_queue_drops(self) -> None:
        # The batch processor drops silently when its queue is full; after its shutdown
        # (a full flush) every handed span was either exported or counted as failed.
        exporter = self.exporter
        if exporter is None:
            return
        stats = exporter.stats()
        with self._count_lock:
            lost = self.num_handed_spans - stats.num_exported_spans - stats.num_dropped_spans
            self.num_handed_spans = 0
        if lost > 0:
            exporter.count_dropped(lost)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        inner = self.inner
        return inner.force_flush(timeout_millis) if inner is not None else True


@dataclass(slots=True)
class SDKState:
    """What :func:`init` set up; read by ``@traced`` and ``span()`` on every span."""

    config: SDKConfig
    provider: TracerProvider
    tracer: trace.Tracer
    processor: _MentatSpanProcessor
    exporter: CountingExporter
    sampler: Sampler | None
    env_context: Context | None
    owns_provider: bool


_state: SDKState | None = None
_lock = threading.Lock()
_atexit_registered = False


def get_state() -> SDKState | None:
    """The current SDK state, or None before :func:`init`."""
    return _state


def _build_exporter(config: SDKConfig, endpoint_given: bool) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else None
    endpoint = config.endpoint.rstrip("/") + "/v1/traces"
    traces_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces_endpoint and not endpoint_given and "MENTATLAB_ENDPOINT" not in os.environ:
        endpoint = traces_endpoint
    return OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=config.export_timeout_s)


def _resource_for(config: SDKConfig) -> Resource:
    attributes: dict[str, str] = {}
    if config.service_name:
        attributes["service.name"] = config.service_name
    if config.environment:
        attributes["deployment.environment.name"] = config.environment
    return Resource.create(attributes)


def _provider_for(config: SDKConfig, processor: _MentatSpanProcessor
                  ) -> tuple[TracerProvider, bool]:
    """Return (provider for MentatLab's spans, whether MentatLab owns it)."""
    if _state is not None and not _state.owns_provider:
        return _state.provider, False
    resource = _resource_for(config)
    if _state is not None:
        if dict(_state.provider.resource.attributes) == dict(resource.attributes):
            return _state.provider, True
        # The global provider keeps the first resource (OTel providers are immutable
        # there); MentatLab's own spans move to a private provider with the new one.
        private = TracerProvider(resource=resource, shutdown_on_exit=False)
        private.add_span_processor(processor)
        return private, True
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(processor)
        return current, False
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider, True


def init(
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    org: str | None = None,
    project: str | None = None,
    *,
    environment: str | None = None,
    resource_metering: bool | None = None,
    exporter: SpanExporter | None = None,
    batch: bool = True,
    memory_sample_period_ms: float | None = None,
    export_timeout_s: float | None = None,
    shutdown_timeout_s: float | None = None,
    max_queue_spans: int | None = None,
    schedule_delay_ms: int | None = None,
    capture_env_context: bool | None = None,
) -> SDKState:
    """Configure tracing to MentatLab. Safe to call again; never raises into the program.

    Every argument left as None comes from its ``MENTATLAB_*`` (or ``OTEL_*``) environment
    variable, else its default (:class:`~mentatlab.sdk.config.SDKConfig` documents each).
    Spans are exported over OTLP/HTTP protobuf to ``<endpoint>/v1/traces`` from a
    background thread; with no server reachable they are dropped and counted
    (:func:`export_stats`), and the program runs on.

    Args:
        endpoint: base URL of the MentatLab server, e.g. ``http://127.0.0.1:4318``.
        api_key: sent as ``Authorization: Bearer <key>``.
        service_name: ``service.name`` of the process (first call only).
        org: organisation id put on every span (``mentat.org_id``).
        project: project id put on every span (``mentat.project_id``).
        environment: ``deployment.environment.name`` (first call only).
        resource_metering: attach ``mentat.resource.*`` meters to SDK spans.
        exporter: export to this exporter instead of OTLP (tests, other backends).
        batch: export from a background batch (True) or synchronously at span end.
        memory_sample_period_ms: period of the shared resource sampler, ms.
        export_timeout_s: time limit of one export request, s.
        shutdown_timeout_s: longest flush at :func:`shutdown` and process exit, s.
        max_queue_spans: spans waiting for export before new ones are dropped.
        schedule_delay_ms: longest wait of a finished span before export, ms.
        capture_env_context: continue the trace in ``TRACEPARENT``/``BAGGAGE``.

    Returns:
        The SDK state (provider, tracer, exporter counts).

    Raises:
        TypeError: never for values; only if called with an unknown keyword (a
            programming error Python itself reports).
    """
    global _state, _atexit_registered
    config = resolve_config(
        endpoint=endpoint, api_key=api_key, service_name=service_name, org=org,
        project=project, environment=environment, resource_metering=resource_metering,
        memory_sample_period_ms=memory_sample_period_ms, export_timeout_s=export_timeout_s,
        shutdown_timeout_s=shutdown_timeout_s, max_queue_spans=max_queue_spans,
        schedule_delay_ms=schedule_delay_ms, capture_env_context=capture_env_context)
    with _lock:
        previous = _state
        processor = previous.processor if previous is not None else _MentatSpanProcessor()
        provider, owns_provider = _provider_for(config, processor)
        counting = CountingExporter(
            exporter if exporter is not None else _build_exporter(config, endpoint is not None))
        if batch:
            max_batch = min(512, config.max_queue_spans)
            inner: SpanProcessor = BatchSpanProcessor(
                counting, max_queue_size=config.max_queue_spans,
                schedule_delay_millis=config.schedule_delay_ms, max_export_batch_size=max_batch,
                export_timeout_millis=int(config.export_timeout_s * 1000))
        else:
            inner = SimpleSpanProcessor(counting)
        old_inner = processor.inner
        old_exporter = processor.exporter
        old_num_handed = processor.num_handed_spans
        processor.num_handed_spans = 0
        processor.static_attributes = {
            key: value for key, value in
            (("mentat.org_id", config.org), ("mentat.project_id", config.project)) if value}
        processor.exporter = counting
        processor.inner = inner
        sampler = None
        if config.resource_metering:
            sampler = get_sampler(config.memory_sample_period_ms)
            install_loop_hook()
        env_context = extract_env() if config.capture_env_context else None
        _state = SDKState(config, provider, provider.get_tracer(_SCOPE), processor, counting,
                          sampler, env_context, owns_provider)
        if not _atexit_registered:
            atexit.register(_shutdown_at_exit)
            _atexit_registered = True
    if old_inner is not None:
        with handle_internal_errors():
            old_inner.shutdown()
            if old_exporter is not None:
                old_stats = old_exporter.stats()
                lost = old_num_handed - old_stats.num_exported_spans - old_stats.num_dropped_spans
                if lost > 0:
                    old_exporter.count_dropped(lost)
    return _state


def export_stats() -> ExportStats:
    """Spans exported and dropped since the last :func:`init` (zeros before it)."""
    state = _state
    return state.exporter.stats() if state is not None else ExportStats(0, 0)


def shutdown(timeout_s: float | None = None) -> ExportStats:
    """Flush finished spans and stop exporting; later spans are dropped and counted.

    Args:
        timeout_s: longest wait for the flush, s; default ``shutdown_timeout_s``.

    Returns:
        The export counts after the flush.
    """
    state = _state
    if state is None:
        return ExportStats(0, 0)
    limit_s = state.config.shutdown_timeout_s if timeout_s is None else timeout_s
    with handle_internal_errors():
        state.processor.force_flush(int(limit_s * 1000))
        state.processor.shutdown()
    return state.exporter.stats()


def _restart_sampler_after_fork() -> None:
    # The sampler thread did not survive fork and its /proc/self files name the parent;
    # _sampler's own hook (registered first, so run first) forgot it: start the child's.
    state = _state
    if state is not None and state.sampler is not None:
        state.sampler = get_sampler(state.config.memory_sample_period_ms)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_sampler_after_fork)


def _shutdown_at_exit() -> None:
    try:
        shutdown()
    except Exception:  # at interpreter exit there is nobody left to raise to
        logger.debug("MentatLab shutdown at exit failed", exc_info=True)
