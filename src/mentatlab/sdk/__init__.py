"""MentatLab Python SDK: trace any agent in one line and meter what each run used.

``mentatlab.init()`` configures the OpenTelemetry SDK to export to MentatLab;
``@mentatlab.traced`` and ``mentatlab.span()`` create spans carrying
``mentat.resource.*`` meters; agent, workflow, run and user set on a span are inherited by
the spans started under it (:mod:`mentatlab.sdk.attribution`);
:mod:`mentatlab.sdk.propagation` carries context across threads, tasks, processes and
services; ``mentatlab.checkpoint(state)`` records state for replay;
``mentatlab.instrument()`` turns on the published GenAI instrumentations. See
``docs/sdk.md``.
"""

from __future__ import annotations

from mentatlab.sdk.attributes import (
    record_tokens,
    set_agent,
    set_attributes,
    set_model,
    set_prompt_version,
    set_tool,
    set_workflow,
)
from mentatlab.sdk.attribution import AttributionProcessor
from mentatlab.sdk.checkpoint import checkpoint
from mentatlab.sdk.configure import SDKState, export_stats, get_state, init, shutdown
from mentatlab.sdk.exporter import ExportStats
from mentatlab.sdk.guard import GuardResult, configure_guard, guard
from mentatlab.sdk.instrumentation import instrument
from mentatlab.sdk.propagation import (
    baggage,
    extract_env,
    extract_headers,
    extract_message_headers,
    inject_env,
    inject_headers,
    inject_message_headers,
    wrap_context,
)
from mentatlab.sdk.tracing import span, traced

__all__ = [
    "AttributionProcessor",
    "ExportStats",
    "GuardResult",
    "SDKState",
    "baggage",
    "checkpoint",
    "configure_guard",
    "export_stats",
    "extract_env",
    "extract_headers",
    "extract_message_headers",
    "get_state",
    "guard",
    "init",
    "inject_env",
    "inject_headers",
    "inject_message_headers",
    "instrument",
    "record_tokens",
    "set_agent",
    "set_attributes",
    "set_model",
    "set_prompt_version",
    "set_tool",
    "set_workflow",
    "shutdown",
    "span",
    "traced",
    "wrap_context",
]
