"""One OpenTelemetry tracer provider per agent behind a single provider instrumentations see.

An instrumentation (``OpenAIInstrumentor().instrument(tracer_provider=...)``) binds to one
tracer provider, and a provider has one resource. The demo plays several agents of several
tenants in one process, each with its own resource (``service.name``,
``mentat.org_id``...). :class:`RoutingTracerProvider` hands out tracers that start every
span on the provider of the agent current in the context (:func:`use_agent`).

:class:`ContextAttributesProcessor` stamps per-call attributes (``mentat.attempt``,
``mentat.is_retry``) on spans started while :func:`span_attributes` is active, including
spans an instrumentation creates. (Agent, workflow, run and session are not stamped this
way: they are set on a run's root span and inherited through the SDK's
:class:`~mentatlab.sdk.AttributionProcessor`.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import SpanKind
from opentelemetry.util import types
from opentelemetry.util._decorator import _agnosticcontextmanager

__all__ = [
    "ContextAttributesProcessor",
    "RoutingTracerProvider",
    "span_attributes",
    "use_agent",
]

_CURRENT_AGENT: ContextVar[str] = ContextVar("mentat_demo_agent", default="")
_EXTRA_ATTRIBUTES: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "mentat_demo_attributes", default=None)


@contextmanager
def use_agent(agent_id: str) -> Iterator[None]:
    """Route spans started inside the block to ``agent_id``'s tracer provider."""
    token = _CURRENT_AGENT.set(agent_id)
    try:
        yield
    finally:
        _CURRENT_AGENT.reset(token)


@contextmanager
def span_attributes(**attributes: Any) -> Iterator[None]:
    """Add ``attributes`` to every span started inside the block (nested blocks merge)."""
    token = _EXTRA_ATTRIBUTES.set({**(_EXTRA_ATTRIBUTES.get() or {}), **attributes})
    try:
        yield
    finally:
        _EXTRA_ATTRIBUTES.reset(token)


class ContextAttributesProcessor(SpanProcessor):
    """Sets the attributes of the innermost :func:`span_attributes` block on span start."""

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        """Stamp the current context attributes on ``span``."""
        for key, value in (_EXTRA_ATTRIBUTES.get() or {}).items():
            span.set_attribute(key, value)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do at span end."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered: always flushed."""
        return True


class _RoutingTracer(trace.Tracer):
    def __init__(self, owner: RoutingTracerProvider, args: tuple[Any, ...]) -> None:
        self._owner = owner
        self._args = args

    def _tracer(self) -> trace.Tracer:
        return self._owner.provider().get_tracer(*self._args)

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: trace._Links = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        return self._tracer().start_span(name, context, kind, attributes, links, start_time,
                                         record_exception, set_status_on_exception)

    @_agnosticcontextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: trace._Links = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        with self._tracer().start_as_current_span(
                name, context, kind, attributes, links, start_time, record_exception,
                set_status_on_exception, end_on_exit) as span:
            yield span


class RoutingTracerProvider(trace.TracerProvider):
    """A tracer provider that delegates to the current agent's SDK provider.

    Args:
        providers: Agent id -> that agent's SDK tracer provider (its own resource).
        default_agent: The agent used outside any :func:`use_agent` block.

    Raises:
        KeyError: on span start, when the current agent has no provider.
    """

    def __init__(self, providers: Mapping[str, SdkTracerProvider], default_agent: str) -> None:
        self.providers = dict(providers)
        self.default_agent = default_agent

    def provider(self) -> SdkTracerProvider:
        """The SDK provider of the agent current in the context."""
        return self.providers[_CURRENT_AGENT.get() or self.default_agent]

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace.Tracer:
        """A tracer that starts spans on the current agent's provider."""
        return _RoutingTracer(self, (instrumenting_module_name, instrumenting_library_version,
                                     schema_url, attributes))

    def shutdown(self) -> None:
        """Flush and shut down every agent's provider (exports what is buffered)."""
        for provider in self.providers.values():
            provider.shutdown()
