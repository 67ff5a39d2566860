"""The demo's cast: tenants, projects and agents, and what one agent run does.

An agent run is an ``invoke_agent`` root span with child LLM calls made through the real
``openai`` client (spans from whichever instrumentation the process installed), tool
executions (``execute_tool`` spans, some failing), application-level retries after a 429
(``mentat.attempt`` / ``mentat.is_retry`` on the retried call) and, for retrieval agents,
an embeddings call. Only the root span is told which agent, workflow, run and session it
belongs to (``mentatlab.set_agent`` and friends); the spans under it inherit them, as in a
real agent. Questions, failures and streaming follow from the run number, so runs are
reproducible.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from openai.types.chat import ChatCompletion
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

import mentatlab
from mentatlab.demo.routing import span_attributes

__all__ = ["AGENTS", "Agent", "RunOutcome", "run_agent"]

T = TypeVar("T")

_TOOLS: dict[str, dict[str, Any]] = {
    name: {"type": "function", "function": {
        "name": name, "description": desc,
        "parameters": {"type": "object", "properties": props, "required": list(props)}}}
    for name, desc, props in [
        ("lookup_order", "Find an order by id", {"order_id": {"type": "string"}}),
        ("issue_refund", "Refund an order", {"order_id": {"type": "string"},
                                             "amount_usd": {"type": "number"}}),
        ("search_papers", "Search the paper index", {"query": {"type": "string"},
                                                     "limit": {"type": "integer"}}),
        ("run_tests", "Run the test suite", {"path": {"type": "string"}}),
    ]
}

_QUESTIONS = [
    # two carry personal data, as support questions do: ingest redacts it before storage
    "Where is my order 8812? It was due yesterday. Reply to jane.doe@gmail.com please.",
    "Summarise recent work on retrieval-augmented generation for legal documents.",
    "Why does the checkout service time out under load?",
    "Can I get a refund for a damaged item, order 1207? I paid with 4111 1111 1111 1111.",
    "Review this diff for race conditions in the job scheduler.",
    "Compare vector databases for a 10M document corpus.",
]


@dataclass(frozen=True)
class Agent:
    """One agent of one tenant, and the model and tools it uses."""

    org_id: str
    project_id: str
    agent_id: str
    model: str
    tools: tuple[str, ...] = ()
    embedding_model: str = ""
    streaming: bool = False
    instrumentation: str = "openai-v2"
    """Which process plays it: ``openai-v2`` (OTLP/HTTP) or ``openinference`` (OTLP/gRPC)."""
    agent_version: str = "1.4.0"

    @property
    def system_prompt(self) -> str:
        """A long, stable system prompt, so repeated runs hit OpenAI's prompt cache."""
        rules = " ".join(f"Rule {i}: be accurate, cite sources, and never invent order ids."
                         for i in range(80))
        return f"You are {self.agent_id} for {self.org_id}/{self.project_id}. {rules}"

    @property
    def resource_attributes(self) -> dict[str, str]:
        """OTel resource attributes of the service this agent runs in (its project's).

        Tenancy only: which agent a span belongs to is set once, on the run's root span
        (:func:`run_agent`), and reaches the LLM and tool spans under it through the SDK's
        attribution propagation (:class:`mentatlab.sdk.AttributionProcessor`).
        """
        return {
            "service.name": self.project_id,
            "deployment.environment.name": "demo",
            "mentat.org_id": self.org_id,
            "mentat.project_id": self.project_id,
        }


AGENTS: tuple[Agent, ...] = (
    Agent("acme", "support-bot", "triage-agent", "gpt-4o-mini",
          tools=("lookup_order",)),
    Agent("acme", "support-bot", "refund-agent", "gpt-4.1-mini",
          tools=("lookup_order", "issue_refund"), streaming=True),
    Agent("globex", "research", "research-agent", "gpt-4o", tools=("search_papers",),
          embedding_model="text-embedding-3-small"),
    Agent("globex", "research", "planner-agent", "o3-mini", tools=("search_papers",),
          instrumentation="openinference"),
    Agent("initech", "code-review", "review-agent", "gpt-5-mini", tools=("run_tests",),
          streaming=True, instrumentation="openinference",
          embedding_model="text-embedding-3-small"),
    Agent("initech", "code-review", "lint-agent", "acme-llama-3-70b",
          instrumentation="openinference"),
)
"""The cast; ``acme-llama-3-70b`` is a self-hosted model with no public price (unpriced)."""


@dataclass
class RunOutcome:
    """What one agent run did (counts, for the progress display)."""

    llm_calls: int = 0
    retries: int = 0
    tool_calls: int = 0
    tool_failures: int = 0
    ok: bool = True


def _with_retry(call: Callable[[dict[str, str]], T], fail_first: bool,
                outcome: RunOutcome, max_attempts: int = 3) -> T:
    """Call ``call(extra_headers)``, retrying 429/5xx with ``mentat.attempt`` stamped.

    Raises:
        openai.APIStatusError: the last attempt failed too.
    """
    for attempt in range(1, max_attempts + 1):
        headers = {"x-fake-fail": "rate_limit"} if fail_first and attempt == 1 else {}
        with span_attributes(**{"mentat.attempt": attempt, "mentat.is_retry": attempt > 1}):
            try:
                outcome.llm_calls += 1
                return call(headers)
            except (openai.RateLimitError, openai.InternalServerError):
                if attempt == max_attempts:
                    raise
                outcome.retries += 1
                time.sleep(0.02 * attempt)
    raise AssertionError("unreachable")


def _chat(client: openai.OpenAI, agent: Agent, messages: list[dict[str, Any]],
          stream: bool, headers: dict[str, str]) -> dict[str, Any]:
    """One chat completion; returns the assistant message as a dict."""
    if headers:  # an injected failure: let the application retry, not the client
        client = client.with_options(max_retries=0)
    kwargs: dict[str, Any] = {"model": agent.model, "messages": messages,
                              "extra_headers": headers}
    if agent.tools:
        kwargs["tools"] = [_TOOLS[t] for t in agent.tools]
    if not stream:
        r: ChatCompletion = client.chat.completions.create(**kwargs)
        return r.choices[0].message.model_dump(exclude_none=True)
    chunks = client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs)
    text, calls = "", []
    for chunk in chunks:
        if chunk.choices:
            delta = chunk.choices[0].delta
            text += delta.content or ""
            calls += [c.model_dump(exclude_none=True) for c in delta.tool_calls or []]
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    return message


def _execute_tool(tracer: trace.Tracer, call: dict[str, Any], failing: bool,
                  outcome: RunOutcome) -> str:
    name = call["function"]["name"]
    outcome.tool_calls += 1
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
             "gen_ai.tool.call.id": call["id"], "gen_ai.tool.type": "function"}
    with tracer.start_as_current_span(f"execute_tool {name}", attributes=attrs) as span:
        time.sleep(0.005)
        if not failing:
            return json.dumps({"tool": name, "result": "ok", "items": 3})
        outcome.tool_failures += 1
        error = TimeoutError(f"{name} did not answer within 2 s")
        span.record_exception(error)
        span.set_attribute("error.type", "TimeoutError")
        span.set_attribute("mentat.error_type", "tool_timeout")
        span.set_status(Status(StatusCode.ERROR, str(error)))
        return json.dumps({"tool": name, "error": "timeout"})


def run_agent(client: openai.OpenAI, tracer: trace.Tracer, agent: Agent, run: int,
              session_id: str) -> RunOutcome:
    """Play one run of ``agent``: root span, LLM calls, tools, retries, embeddings.

    Args:
        client: An ``openai.OpenAI`` client (already instrumented) for the fake server.
        tracer: Tracer for the spans the application itself makes (agent, tools).
        agent: Who is running.
        run: The run number; decides the question, failures and streaming.
        session_id: The conversation session the run belongs to.

    Returns:
        Counts of what happened.
    """
    outcome = RunOutcome()
    run_id = str(uuid.uuid4())
    root_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent.agent_id,
                  "gen_ai.agent.id": agent.agent_id, "gen_ai.conversation.id": session_id}
    with tracer.start_as_current_span(f"invoke_agent {agent.agent_id}",
                                      attributes=root_attrs) as root:
        # Set on the root span only: every span started under it inherits them.
        mentatlab.set_agent(agent.agent_id, version=agent.agent_version)
        mentatlab.set_workflow(f"{agent.project_id}-flow")
        mentatlab.set_attributes(run_id=run_id, session_id=session_id)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": agent.system_prompt},
            {"role": "user", "content": _QUESTIONS[run % len(_QUESTIONS)]}]
        try:
            if agent.embedding_model:
                outcome.llm_calls += 1
                client.embeddings.create(model=agent.embedding_model,
                                         input=[messages[1]["content"], agent.agent_id])
            stream = agent.streaming and run % 2 == 0
            reply = _with_retry(lambda h: _chat(client, agent, messages, stream, h),
                                fail_first=run % 4 == 1, outcome=outcome)
            messages.append(reply)
            for call in reply.get("tool_calls", []):
                result = _execute_tool(tracer, call, failing=run % 5 == 3, outcome=outcome)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
            if reply.get("tool_calls"):
                _with_retry(lambda h: _chat(client, agent, messages, stream, h),
                            fail_first=False, outcome=outcome)
        except openai.APIError as exc:
            outcome.ok = False
            root.record_exception(exc)
            root.set_status(Status(StatusCode.ERROR, type(exc).__name__))
    return outcome
