"""What every matrix driver shares: arguments, OTLP export, case tracking, the JSON report.

A driver runs in its group's virtual environment (not the project's), so this module uses
only the OpenTelemetry API/SDK and the OTLP/HTTP exporter, which every group installs.
It prints ONE JSON line on stdout::

    {"producer": str, "versions": {package: version},
     "cases": [{"id": str, "mode": str, "provider": str, "agent": str,
                "trace_ids": [hex32, ...], "error": str | null}]}

``trace_ids`` are every trace a span started in while the case ran (one expected).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# No instrumentation may phone home or emit a second copy of a span (shared/ENVIRONMENT.md:
# the anthropic SDK traces itself by default).
os.environ.setdefault("ANTHROPIC_OPEN_TELEMETRY", "false")
os.environ.setdefault("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
os.environ.setdefault("TRACELOOP_TELEMETRY", "false")
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "0")
os.environ.update(AWS_ACCESS_KEY_ID="fake", AWS_SECRET_ACCESS_KEY="fake",
                  AWS_DEFAULT_REGION="us-east-1", OPENAI_API_KEY="sk-fake",
                  ANTHROPIC_API_KEY="sk-ant-fake")

CaseFn = Callable[[], Any]


@dataclass(frozen=True)
class Endpoints:
    """Where the fakes and the MentatLab server listen (from the driver's arguments)."""

    openai: str
    """OpenAI base URL, ``http://127.0.0.1:P/v1``."""
    anthropic: str
    """Anthropic base URL, ``http://127.0.0.1:P``."""
    bedrock: str
    """Bedrock runtime endpoint URL for boto3."""
    otlp: str
    """MentatLab server base URL; spans go to ``{otlp}/v1/traces`` (OTLP/HTTP protobuf)."""


class CaseTracker(SpanProcessor):
    """Records the trace id of every span started while a case is current."""

    def __init__(self) -> None:
        self.current = ""
        self.traces: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        if not self.current:
            return
        trace_id = format(span.get_span_context().trace_id, "032x")
        with self._lock:
            seen = self.traces.setdefault(self.current, [])
            if trace_id not in seen:
                seen.append(trace_id)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass
class Driver:
    """One producer's run: its cases, in order, and what happened to each."""

    producer: str
    endpoints: Endpoints
    tracker: CaseTracker = field(default_factory=CaseTracker)
    packages: tuple[str, ...] = ()
    results: list[dict[str, Any]] = field(default_factory=list)

    def exporter(self) -> Any:
        """An OTLP/HTTP protobuf span exporter to the MentatLab server."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"{self.endpoints.otlp}/v1/traces", timeout=30)

    def processors(self) -> list[SpanProcessor]:
        """The case tracker and a batch processor exporting to the server."""
        return [self.tracker, BatchSpanProcessor(self.exporter(), schedule_delay_millis=200)]

    def global_provider(self, service_name: str) -> TracerProvider:
        """Install (and return) a global SDK TracerProvider with :meth:`processors`."""
        from opentelemetry.sdk.resources import Resource

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        for processor in self.processors():
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        return provider

    @contextlib.contextmanager
    def agent_span(self, agent: str) -> Iterator[None]:
        """The case's top-level span: the ONLY span that names the agent (children inherit)."""
        tracer = trace.get_tracer("mentatlab.matrix")
        with tracer.start_as_current_span(f"invoke_agent {agent}", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}):
            yield

    def run(self, case_id: str, mode: str, provider: str, fn: CaseFn, *,
            wrap: bool = True, agent: str | None = None) -> None:
        """Run one case; ``wrap`` puts it under :meth:`agent_span` (frameworks name their own).

        The prompt of a case must carry ``[case:{case_id}]`` (the fakes record it).
        """
        agent = agent or case_id
        self.tracker.current = case_id
        error: str | None = None
        try:
            if wrap:
                with self.agent_span(agent):
                    fn()
            else:
                fn()
        except Exception as exc:  # a case that fails on purpose (error modes) lands here
            error = f"{type(exc).__name__}: {exc}"[:500]
            if os.environ.get("MATRIX_DEBUG"):
                traceback.print_exc()
        finally:
            self.tracker.current = ""
        self.results.append({"id": case_id, "mode": mode, "provider": provider,
                             "agent": agent, "error": error,
                             "trace_ids": self.tracker.traces.get(case_id, [])})

    def report(self) -> None:
        """Print the JSON report (one line on stdout)."""
        versions = {}
        for name in self.packages:
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                versions[name] = None
        print(json.dumps({"producer": self.producer, "versions": versions,
                          "cases": self.results}))
        sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> tuple[str, Endpoints]:
    """``drive.py PRODUCER --openai URL --anthropic URL --bedrock URL --otlp URL``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("producer")
    for name in ("openai", "anthropic", "bedrock", "otlp"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args(argv)
    return args.producer, Endpoints(args.openai, args.anthropic, args.bedrock, args.otlp)
