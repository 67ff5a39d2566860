r"""Drive realistic multi-tenant agent traffic through real, instrumented OpenAI clients.

Run as a process, one per instrumentation (two instrumentations of the ``openai`` client
cannot share one process)::

    python -m mentatlab.demo.traffic --instrumentation openai-v2 \
        --openai-base-url http://127.0.0.1:PORT/v1 --otlp-http http://127.0.0.1:4318 --runs 4

* ``openai-v2``: ``opentelemetry-instrumentation-openai-v2``, exported with the OTel SDK's
  OTLP/HTTP (protobuf) exporter to ``<otlp-http>/v1/traces``;
* ``openinference``: ``openinference-instrumentation-openai``, exported with the OTLP/gRPC
  exporter to ``--otlp-grpc host:port``.

Each agent of :data:`~mentatlab.demo.agents.AGENTS` played by that instrumentation does
``--runs`` runs. Progress goes to stdout as one JSON object a line (``{"done": n,
"total": m}``, then ``{"summary": {...}}``); the process exits when every span is exported.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import asdict

import openai
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from mentatlab.demo.agents import AGENTS, Agent, RunOutcome, run_agent
from mentatlab.demo.routing import ContextAttributesProcessor, RoutingTracerProvider, use_agent
from mentatlab.sdk import AttributionProcessor

__all__ = ["INSTRUMENTATIONS", "agents_for", "main", "run_traffic"]

logger = logging.getLogger(__name__)

INSTRUMENTATIONS = ("openai-v2", "openinference")
_EXPORT_TIMEOUT_S = 10.0


def agents_for(instrumentation: str) -> list[Agent]:
    """The agents a process with ``instrumentation`` plays."""
    return [a for a in AGENTS if a.instrumentation == instrumentation]


def _exporter(instrumentation: str, otlp_http: str, otlp_grpc: str) -> SpanExporter:
    if instrumentation == "openai-v2":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"{otlp_http.rstrip('/')}/v1/traces",
                                timeout=_EXPORT_TIMEOUT_S)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )

    return GrpcSpanExporter(endpoint=otlp_grpc, insecure=True, timeout=_EXPORT_TIMEOUT_S)


def _instrument(instrumentation: str, provider: RoutingTracerProvider) -> None:
    if instrumentation == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(  # type: ignore[no-untyped-call]
            tracer_provider=provider)
    else:
        from openinference.instrumentation import TraceConfig
        from openinference.instrumentation.openai import (
            OpenAIInstrumentor as OpenInferenceInstrumentor,
        )

        # Embedding vectors as span attributes would dwarf everything else in a span.
        OpenInferenceInstrumentor().instrument(
            tracer_provider=provider, config=TraceConfig(hide_embedding_vectors=True))


def _provider(agent: Agent, instrumentation: str, otlp_http: str,
              otlp_grpc: str) -> TracerProvider:
    resource = Resource.create({**agent.resource_attributes,
                                "mentat.runtime": f"python/{instrumentation}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(ContextAttributesProcessor())
    # What mentatlab.init() does on its own provider: the agent, workflow, run and session
    # set on a run's root span reach the instrumentation's LLM spans and the tool spans.
    provider.add_span_processor(AttributionProcessor())
    provider.add_span_processor(BatchSpanProcessor(
        _exporter(instrumentation, otlp_http, otlp_grpc), schedule_delay_millis=200))
    return provider


def _emit(payload: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def run_traffic(instrumentation: str, openai_base_url: str, otlp_http: str = "",
                otlp_grpc: str = "", runs: int = 4) -> RunOutcome:
    """Play ``runs`` runs of every agent of ``instrumentation``, then export every span.

    Args:
        instrumentation: ``openai-v2`` or ``openinference``.
        openai_base_url: Base URL of the (fake) OpenAI server, ending in ``/v1``.
        otlp_http: MentatLab's HTTP base URL (``openai-v2``).
        otlp_grpc: MentatLab's OTLP/gRPC ``host:port`` (``openinference``).
        runs: Runs per agent.

    Returns:
        The summed counts of every run.

    Raises:
        ValueError: an unknown instrumentation.
    """
    if instrumentation not in INSTRUMENTATIONS:
        raise ValueError(f"Expected one of {INSTRUMENTATIONS}, got {instrumentation!r}")
    agents = agents_for(instrumentation)
    routing = RoutingTracerProvider(
        {a.agent_id: _provider(a, instrumentation, otlp_http, otlp_grpc) for a in agents},
        default_agent=agents[0].agent_id)
    _instrument(instrumentation, routing)
    tracer = routing.get_tracer("mentatlab.demo")
    total = RunOutcome()
    done, n_runs = 0, runs * len(agents)
    client = openai.OpenAI(base_url=openai_base_url, api_key="sk-demo-not-a-key",
                           max_retries=2, timeout=5.0)
    try:
        for run in range(runs):
            for agent in agents:
                with use_agent(agent.agent_id):
                    session_id = f"{agent.agent_id}-session-{uuid.uuid4().hex[:8]}"
                    outcome = run_agent(client, tracer, agent, run, session_id)
                for key, value in asdict(outcome).items():
                    if key != "ok":
                        setattr(total, key, getattr(total, key) + value)
                total.ok = total.ok and outcome.ok
                done += 1
                _emit({"done": done, "total": n_runs})
    finally:
        client.close()
        routing.shutdown()
    return total


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m mentatlab.demo.traffic")
    parser.add_argument("--instrumentation", choices=INSTRUMENTATIONS, required=True)
    parser.add_argument("--openai-base-url", required=True)
    parser.add_argument("--otlp-http", default="http://127.0.0.1:4318")
    parser.add_argument("--otlp-grpc", default="127.0.0.1:4317")
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # openai-v2 2.4b0 sets error.type to an exception class; the SDK logs each one.
    logging.getLogger("opentelemetry.attributes").setLevel(logging.ERROR)
    summary = run_traffic(args.instrumentation, args.openai_base_url, args.otlp_http,
                          args.otlp_grpc, args.runs)
    _emit({"summary": asdict(summary)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
