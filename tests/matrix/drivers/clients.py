"""The calls each mode makes with the real client libraries (openai, anthropic, boto3).

A mode is a function ``(client, tag) -> None`` where ``tag`` is the case's prompt tags
(``[case:ID]`` plus flags the fakes read, see ``tests/fakes/scenario.py``). Modes that
call twice (tool loops) make two LLM calls under the same agent span.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Mode = Callable[[Any, str], None]

OPENAI_MODEL = "gpt-4o"
OPENAI_REASONING_MODEL = "o4-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-20250514"
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"

def _flags(mode: str) -> list[str]:
    """Tags the fakes read, from the mode's name (``...-cache-read``, ``...-retry``...)."""
    flags = []
    if "cache-read" in mode:
        flags.append("[cache:read]")
    elif "cache-write" in mode:
        flags.append("[cache:write]")
    elif mode.endswith("-cache"):
        flags.append("[cache:read+write]")
    if mode.endswith("-retry"):
        flags.append("[fail:429]")
    if mode.endswith("-error"):
        flags.append("[fail:400]")
    return flags


WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}


def tag_for(case_id: str, mode: str) -> str:
    """The prompt tags for ``mode``: the case id plus every flag its name asks for."""
    return " ".join([f"[case:{case_id}]", *_flags(mode)])


def _ask(tag: str) -> str:
    return f"What is the capital of France? {tag}"


# ----------------------------------------------------------------------------- OpenAI


def _chat(client: Any, tag: str, model: str = OPENAI_MODEL, **kw: Any) -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "You are terse."},
                               {"role": "user", "content": _ask(tag)}], **kw)


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


def chat_tool_loop(client: Any, tag: str) -> None:
    """Chat Completions: the model calls ``get_weather``, then answers from its result."""
    tools = [{"type": "function", "function": WEATHER}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"Weather in Paris? {tag}"}]
    first = client.chat.completions.create(model=OPENAI_MODEL, messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    client.chat.completions.create(model=OPENAI_MODEL, messages=messages, tools=tools)


def responses_tool_loop(client: Any, tag: str) -> None:
    """Responses API: a ``function_call`` item, then the ``function_call_output``."""
    tools = [{"type": "function", **WEATHER}]
    items: list[Any] = [{"role": "user", "content": f"Weather in Paris? {tag}"}]
    first = client.responses.create(model=OPENAI_MODEL, input=items, tools=tools)
    call = next(item for item in first.output if item.type == "function_call")
    items += [call.model_dump(exclude_none=True),
              {"type": "function_call_output", "call_id": call.call_id,
               "output": "sunny, 21 C"}]
    client.responses.create(model=OPENAI_MODEL, input=items, tools=tools)


OPENAI_CHAT_MODES: dict[str, Mode] = {
    "chat": lambda c, t: _chat(c, t),
    "chat-stream": lambda c, t: _drain(_chat(c, t, stream=True,
                                             stream_options={"include_usage": True})),
    "chat-cache-read": lambda c, t: _chat(c, t),
    "chat-reasoning": lambda c, t: _chat(c, t, model=OPENAI_REASONING_MODEL),
    "chat-stream-reasoning-cache-read": lambda c, t: _drain(_chat(
        c, t, model=OPENAI_REASONING_MODEL, stream=True,
        stream_options={"include_usage": True})),
    "chat-tool-call": chat_tool_loop,
    "chat-retry": lambda c, t: _chat(c, t),
    "chat-error": lambda c, t: _chat(c, t),
}
"""Chat Completions modes."""

OPENAI_RESPONSES_MODES: dict[str, Mode] = {
    "responses": lambda c, t: c.responses.create(model=OPENAI_MODEL, input=_ask(t)),
    "responses-stream": lambda c, t: _drain(c.responses.create(
        model=OPENAI_MODEL, input=_ask(t), stream=True)),
    "responses-reasoning-cache-read": lambda c, t: c.responses.create(
        model=OPENAI_REASONING_MODEL, input=_ask(t)),
    "responses-tool-call": responses_tool_loop,
}
"""Responses API modes."""

# ----------------------------------------------------------------------------- Anthropic

_SYSTEM_CACHED = [{"type": "text", "text": "You are a geography tutor. " * 200,
                   "cache_control": {"type": "ephemeral"}}]


def _message(client: Any, tag: str, **kw: Any) -> Any:
    return client.messages.create(model=ANTHROPIC_MODEL, max_tokens=256,
                                  messages=[{"role": "user", "content": _ask(tag)}], **kw)


def anthropic_tool_loop(client: Any, tag: str) -> None:
    """Messages API: a ``tool_use`` block, then the ``tool_result``."""
    tools = [{"name": WEATHER["name"], "description": WEATHER["description"],
              "input_schema": WEATHER["parameters"]}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"Weather in Paris? {tag}"}]
    first = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=messages,
                                   tools=tools)
    use = next(block for block in first.content if block.type == "tool_use")
    messages += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                               "content": "sunny, 21 C"}]}]
    client.messages.create(model=ANTHROPIC_MODEL, max_tokens=256, messages=messages,
                           tools=tools)


ANTHROPIC_MODES: dict[str, Mode] = {
    "messages": lambda c, t: _message(c, t),
    "messages-stream": lambda c, t: _drain(_message(c, t, stream=True)),
    "messages-cache-write": lambda c, t: _message(c, t, system=_SYSTEM_CACHED),
    "messages-cache-read": lambda c, t: _message(c, t, system=_SYSTEM_CACHED),
    "messages-stream-cache": lambda c, t: _drain(_message(c, t, system=_SYSTEM_CACHED,
                                                          stream=True)),
    "messages-tool-call": anthropic_tool_loop,
    "messages-retry": lambda c, t: _message(c, t),
    "messages-error": lambda c, t: _message(c, t),
}
"""Anthropic Messages modes (cache modes put ``cache_control`` on the system prompt)."""

# ----------------------------------------------------------------------------- Bedrock


def _converse(client: Any, tag: str, stream: bool = False, **kw: Any) -> Any:
    call = client.converse_stream if stream else client.converse
    answer = call(modelId=BEDROCK_MODEL, messages=[
        {"role": "user", "content": [{"text": _ask(tag)}]}], **kw)
    if stream:
        _drain(answer["stream"])
    return answer


def converse_tool_loop(client: Any, tag: str) -> None:
    """Converse: a ``toolUse`` block, then the ``toolResult``."""
    config = {"tools": [{"toolSpec": {"name": WEATHER["name"],
                                      "description": WEATHER["description"],
                                      "inputSchema": {"json": WEATHER["parameters"]}}}]}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"text": f"Weather in Paris? {tag}"}]}]
    first = client.converse(modelId=BEDROCK_MODEL, messages=messages, toolConfig=config)
    message = first["output"]["message"]
    use = next(block["toolUse"] for block in message["content"] if "toolUse" in block)
    messages += [message, {"role": "user", "content": [{"toolResult": {
        "toolUseId": use["toolUseId"], "content": [{"text": "sunny, 21 C"}]}}]}]
    client.converse(modelId=BEDROCK_MODEL, messages=messages, toolConfig=config)


def invoke_anthropic(client: Any, tag: str) -> None:
    """InvokeModel with an Anthropic Messages body."""
    answer = client.invoke_model(modelId=BEDROCK_MODEL, body=json.dumps({
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 256,
        "messages": [{"role": "user", "content": _ask(tag)}]}))
    json.loads(answer["body"].read())


BEDROCK_MODES: dict[str, Mode] = {
    "converse": lambda c, t: _converse(c, t),
    "converse-stream": lambda c, t: _converse(c, t, stream=True),
    "converse-cache": lambda c, t: _converse(c, t),
    "converse-stream-cache": lambda c, t: _converse(c, t, stream=True),
    "converse-tool-call": converse_tool_loop,
    "converse-retry": lambda c, t: _converse(c, t),
    "converse-error": lambda c, t: _converse(c, t),
    "invoke-model": invoke_anthropic,
    "invoke-model-cache": invoke_anthropic,
}
"""Bedrock runtime modes."""


def openai_client(base_url: str) -> Any:
    """A real ``openai.OpenAI`` client at the fake (2 retries, 20 s timeout)."""
    import openai

    return openai.OpenAI(base_url=base_url, api_key="sk-fake", max_retries=2, timeout=20)


def anthropic_client(base_url: str) -> Any:
    """A real ``anthropic.Anthropic`` client at the fake (2 retries, 20 s timeout)."""
    import anthropic

    return anthropic.Anthropic(base_url=base_url, api_key="sk-ant-fake", max_retries=2,
                               timeout=20)


def bedrock_client(endpoint_url: str) -> Any:
    """A real boto3 ``bedrock-runtime`` client at the fake (3 attempts, 20 s timeouts)."""
    import boto3
    from botocore.config import Config

    return boto3.client("bedrock-runtime", endpoint_url=endpoint_url, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                      connect_timeout=5, read_timeout=20))


def run_modes(driver: Any, provider: str, client: Any, modes: dict[str, Mode],
              only: tuple[str, ...] | None = None) -> None:
    """Run ``modes`` (or the ``only`` subset) as cases ``{producer}.{mode}``."""
    for mode, fn in modes.items():
        if only is not None and mode not in only:
            continue
        case_id = f"{driver.producer}.{mode}"
        tag = tag_for(case_id, mode)
        driver.run(case_id, mode, provider, lambda fn=fn, tag=tag: fn(client, tag))
