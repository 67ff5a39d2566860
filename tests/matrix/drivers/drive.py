"""Run one producer's cases against the fakes, exporting OTLP to a MentatLab server.

Usage (inside the producer's group venv, see ``tests/matrix/groups.py``)::

    python drive.py PRODUCER --openai URL --anthropic URL --bedrock URL --otlp URL

Each producer function configures ONE instrumentation the way its documentation says,
then runs its cases with the real client library or framework. Prints the JSON report of
:mod:`harness` on stdout.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import clients  # noqa: E402
from clients import (  # noqa: E402
    ANTHROPIC_MODES,
    BEDROCK_MODES,
    OPENAI_CHAT_MODES,
    OPENAI_RESPONSES_MODES,
    run_modes,
)
from harness import Driver, parse_args  # noqa: E402

_OPENAI_PACKAGES = ("openai", "opentelemetry-sdk")
_ALL_OPENAI = {**OPENAI_CHAT_MODES, **OPENAI_RESPONSES_MODES}


def otel_openai_v2(driver: Driver) -> None:
    """OTel contrib ``opentelemetry-instrumentation-openai-v2`` (Chat Completions only)."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    driver.packages = ("opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai",
                       *_OPENAI_PACKAGES)
    provider = driver.global_provider("matrix-otel-openai-v2")
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    run_modes(driver, "openai", clients.openai_client(driver.endpoints.openai), _ALL_OPENAI)
    provider.shutdown()


def openinference(driver: Driver) -> None:
    """OpenInference for OpenAI (chat + Responses) and Anthropic, one process."""
    from openinference.instrumentation.anthropic import AnthropicInstrumentor
    from openinference.instrumentation.openai import OpenAIInstrumentor

    driver.packages = ("openinference-instrumentation-openai",
                       "openinference-instrumentation-anthropic", "anthropic",
                       *_OPENAI_PACKAGES)
    provider = driver.global_provider("matrix-openinference")
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    AnthropicInstrumentor().instrument(tracer_provider=provider)
    run_modes(driver, "openai", clients.openai_client(driver.endpoints.openai), _ALL_OPENAI)
    run_modes(driver, "anthropic", clients.anthropic_client(driver.endpoints.anthropic),
              ANTHROPIC_MODES)
    provider.shutdown()


def openinference_langchain(driver: Driver) -> None:
    """OpenInference for LangChain: ChatOpenAI and ChatAnthropic, invoke/stream/tools."""
    from langchain_anthropic import ChatAnthropic
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from openinference.instrumentation.langchain import LangChainInstrumentor

    driver.packages = ("openinference-instrumentation-langchain", "langchain-core",
                       "langchain-openai", "langchain-anthropic", "openai", "anthropic")
    provider = driver.global_provider("matrix-oi-langchain")
    LangChainInstrumentor().instrument(tracer_provider=provider)

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny, 21 C"

    def openai_model(model: str = clients.OPENAI_MODEL, **kw: Any) -> Any:
        return ChatOpenAI(model=model, base_url=driver.endpoints.openai, api_key="sk-fake",
                          max_retries=2, timeout=20, **kw)

    def anthropic_model() -> Any:
        return ChatAnthropic(model=clients.ANTHROPIC_MODEL, base_url=driver.endpoints.anthropic,
                             api_key="sk-ant-fake", max_retries=2, timeout=20, max_tokens=256)

    def tool_loop(model: Any, tag: str) -> None:
        bound = model.bind_tools([get_weather])
        messages: list[Any] = [HumanMessage(f"Weather in Paris? {tag}")]
        first = bound.invoke(messages)
        call = first.tool_calls[0]
        messages += [first, ToolMessage(get_weather.invoke(call["args"]),
                                        tool_call_id=call["id"])]
        bound.invoke(messages)

    def ask(tag: str) -> str:
        return f"What is the capital of France? {tag}"

    def drain(stream: Any) -> None:
        for _ in stream:
            pass

    system = {"type": "text", "text": "You are a geography tutor. " * 200,
              "cache_control": {"type": "ephemeral"}}
    modes: dict[str, Callable[[Any, str], None]] = {
        "lc-chat": lambda _, t: openai_model().invoke(ask(t)),
        "lc-chat-stream": lambda _, t: drain(openai_model(stream_usage=True).stream(ask(t))),
        "lc-chat-cache-read": lambda _, t: openai_model().invoke(ask(t)),
        "lc-chat-reasoning": lambda _, t: openai_model(clients.OPENAI_REASONING_MODEL)
        .invoke(ask(t)),
        "lc-chat-tool-call": lambda _, t: tool_loop(openai_model(), t),
        "lc-responses-reasoning-cache-read": lambda _, t: openai_model(
            clients.OPENAI_REASONING_MODEL, use_responses_api=True).invoke(ask(t)),
        "lc-messages": lambda _, t: anthropic_model().invoke(ask(t)),
        "lc-messages-stream-cache": lambda _, t: drain(anthropic_model().stream(
            [{"role": "system", "content": [system]}, {"role": "user", "content": ask(t)}])),
        "lc-messages-cache-write": lambda _, t: anthropic_model().invoke(
            [{"role": "system", "content": [system]}, {"role": "user", "content": ask(t)}]),
        "lc-messages-tool-call": lambda _, t: tool_loop(anthropic_model(), t),
    }
    for mode, fn in modes.items():
        case_id = f"{driver.producer}.{mode}"
        tag = clients.tag_for(case_id, mode)
        provider_name = "anthropic" if "messages" in mode else "openai"
        driver.run(case_id, mode, provider_name, lambda fn=fn, tag=tag: fn(None, tag))
    provider.shutdown()


def openinference_openai_agents(driver: Driver) -> None:
    """OpenInference for the OpenAI Agents SDK: agent runs with a tool, nesting LLM calls.

    The Agents SDK's own agent span (named after the agent) is the top of each case: the
    driver adds no wrapper, so the model-call spans must inherit the agent from it.
    """
    import openai
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_default_openai_client,
    )
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    driver.packages = ("openinference-instrumentation-openai-agents", "openai-agents",
                       *_OPENAI_PACKAGES)
    provider = driver.global_provider("matrix-oi-openai-agents")
    # exclusive: replaces the SDK's default processor that would upload to OpenAI
    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider, exclusive_processor=True)

    def fresh_client() -> Any:
        # one client per case: each case runs its own event loop (asyncio.run)
        client = openai.AsyncOpenAI(base_url=driver.endpoints.openai, api_key="sk-fake",
                                    max_retries=2, timeout=20)
        set_default_openai_client(client, use_for_tracing=False)
        return client

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny, 21 C"

    async def streamed(agent: Any, prompt: str) -> None:
        result = Runner.run_streamed(agent, prompt)
        async for _ in result.stream_events():
            pass

    def agent_case(mode: str, model: Any, stream: bool = False) -> None:
        case_id = f"{driver.producer}.{mode}"
        tag = clients.tag_for(case_id, mode)
        agent_name = f"{driver.producer}.{mode}"
        client = fresh_client()
        if model == "chat":
            model = OpenAIChatCompletionsModel(model=clients.OPENAI_MODEL, openai_client=client)
        agent = Agent(name=agent_name, instructions="Answer with the weather tool.",
                      model=model, tools=[get_weather])
        prompt = f"Weather in Paris? {tag}"

        def run() -> None:
            if stream:
                asyncio.run(streamed(agent, prompt))
            else:
                asyncio.run(Runner.run(agent, prompt))

        driver.run(case_id, mode, "openai", run, wrap=False, agent=agent_name)

    agent_case("agents-responses-tool-call", clients.OPENAI_MODEL)
    agent_case("agents-responses-stream-tool-call", clients.OPENAI_MODEL, stream=True)
    agent_case("agents-responses-reasoning-cache-read-tool-call",
               clients.OPENAI_REASONING_MODEL)
    agent_case("agents-chat-tool-call", "chat")
    provider.shutdown()


def openllmetry(driver: Driver) -> None:
    """OpenLLMetry (Traceloop) instrumentations for OpenAI, Anthropic and Bedrock."""
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    from opentelemetry.instrumentation.bedrock import BedrockInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    driver.packages = ("opentelemetry-instrumentation-openai",
                       "opentelemetry-instrumentation-anthropic",
                       "opentelemetry-instrumentation-bedrock",
                       "opentelemetry-semantic-conventions-ai", "anthropic", "boto3",
                       *_OPENAI_PACKAGES)
    provider = driver.global_provider("matrix-openllmetry")
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    AnthropicInstrumentor().instrument(tracer_provider=provider)
    BedrockInstrumentor().instrument(tracer_provider=provider)
    run_modes(driver, "openai", clients.openai_client(driver.endpoints.openai), _ALL_OPENAI)
    run_modes(driver, "anthropic", clients.anthropic_client(driver.endpoints.anthropic),
              ANTHROPIC_MODES)
    run_modes(driver, "aws.bedrock", clients.bedrock_client(driver.endpoints.bedrock),
              BEDROCK_MODES)
    provider.shutdown()


def openlit(driver: Driver) -> None:
    """OpenLIT auto-instrumentation (openai, anthropic, bedrock) on our TracerProvider."""
    import openlit as openlit_sdk

    driver.packages = ("openlit", "anthropic", "boto3", *_OPENAI_PACKAGES)
    # OpenLIT reuses an SDK TracerProvider already set globally (openlit/otel/tracing.py)
    provider = driver.global_provider("matrix-openlit")
    openlit_sdk.init(application_name="matrix-openlit", disable_metrics=True,
                     disabled_instrumentors=["httpx", "requests", "urllib", "urllib3"])
    run_modes(driver, "openai", clients.openai_client(driver.endpoints.openai), _ALL_OPENAI)
    run_modes(driver, "anthropic", clients.anthropic_client(driver.endpoints.anthropic),
              ANTHROPIC_MODES)
    run_modes(driver, "aws.bedrock", clients.bedrock_client(driver.endpoints.bedrock),
              BEDROCK_MODES)
    provider.shutdown()


def logfire(driver: Driver) -> None:
    """Pydantic Logfire's OpenAI and Anthropic integrations, exporting only to MentatLab."""
    import logfire as logfire_sdk

    driver.packages = ("logfire", "anthropic", *_OPENAI_PACKAGES)
    logfire_sdk.configure(send_to_logfire=False, console=False, service_name="matrix-logfire",
                          additional_span_processors=driver.processors(), metrics=False)
    openai_client = clients.openai_client(driver.endpoints.openai)
    anthropic_client = clients.anthropic_client(driver.endpoints.anthropic)
    logfire_sdk.instrument_openai(openai_client)
    logfire_sdk.instrument_anthropic(anthropic_client)
    run_modes(driver, "openai", openai_client, _ALL_OPENAI)
    run_modes(driver, "anthropic", anthropic_client, ANTHROPIC_MODES)
    logfire_sdk.shutdown()


def pydantic_ai(driver: Driver) -> None:
    """Pydantic AI agents (its own OTel GenAI spans) on OpenAI chat/Responses and Anthropic.

    The agent run span names the agent and is the top of each case (no driver wrapper).
    """
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.providers.openai import OpenAIProvider

    driver.packages = ("pydantic-ai-slim", "anthropic", *_OPENAI_PACKAGES)
    provider = driver.global_provider("matrix-pydantic-ai")
    Agent.instrument_all(InstrumentationSettings(tracer_provider=provider))
    openai_provider = OpenAIProvider(base_url=driver.endpoints.openai, api_key="sk-fake")
    anthropic_provider = AnthropicProvider(base_url=driver.endpoints.anthropic,
                                           api_key="sk-ant-fake")
    models: dict[str, tuple[str, Callable[[], Any]]] = {
        "pai-chat-tool-call": ("openai", lambda: OpenAIChatModel(
            clients.OPENAI_MODEL, provider=openai_provider)),
        "pai-chat-reasoning-cache-read-tool-call": ("openai", lambda: OpenAIChatModel(
            clients.OPENAI_REASONING_MODEL, provider=openai_provider)),
        "pai-responses-tool-call": ("openai", lambda: OpenAIResponsesModel(
            clients.OPENAI_MODEL, provider=openai_provider)),
        "pai-messages-tool-call": ("anthropic", lambda: AnthropicModel(
            clients.ANTHROPIC_MODEL, provider=anthropic_provider)),
        "pai-messages-cache-tool-call": ("anthropic", lambda: AnthropicModel(
            clients.ANTHROPIC_MODEL, provider=anthropic_provider)),
        "pai-messages-stream-tool-call": ("anthropic", lambda: AnthropicModel(
            clients.ANTHROPIC_MODEL, provider=anthropic_provider)),
    }
    for mode, (provider_name, make_model) in models.items():
        case_id = f"{driver.producer}.{mode}"
        tag = clients.tag_for(case_id, mode.replace("-tool-call", ""))
        agent = Agent(make_model(), name=case_id, instructions="Use the weather tool.")

        @agent.tool_plain
        def get_weather(city: str) -> str:
            """Current weather in a city."""
            return "sunny, 21 C"

        prompt = f"Weather in Paris? {tag}"

        def run(agent: Any = agent, prompt: str = prompt, mode: str = mode) -> None:
            if "stream" in mode:
                async def stream() -> None:
                    async with agent.run_stream(prompt) as result:
                        await result.get_output()
                asyncio.run(stream())
            else:
                agent.run_sync(prompt)

        driver.run(case_id, mode, provider_name, run, wrap=False, agent=case_id)
    provider.shutdown()


PRODUCERS: dict[str, Callable[[Driver], None]] = {
    "otel-openai-v2": otel_openai_v2,
    "openinference": openinference,
    "oi-langchain": openinference_langchain,
    "oi-openai-agents": openinference_openai_agents,
    "openllmetry": openllmetry,
    "openlit": openlit,
    "logfire": logfire,
    "pydantic-ai": pydantic_ai,
}
"""Producer name → the function that instruments and runs its cases."""


def main() -> None:
    """Parse the arguments, run the producer's cases, print the report."""
    producer, endpoints = parse_args()
    driver = Driver(producer, endpoints)
    PRODUCERS[producer](driver)
    driver.report()


if __name__ == "__main__":
    main()
