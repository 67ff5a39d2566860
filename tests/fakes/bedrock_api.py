"""A fake Amazon Bedrock runtime: Converse, ConverseStream and InvokeModel (Anthropic body).

Formats follow the Bedrock API reference: Converse ``usage`` has ``inputTokens`` EXCLUSIVE
of the cache (``totalTokens`` = input + output + ``cacheReadInputTokens`` +
``cacheWriteInputTokens``); ConverseStream sends event-stream messages ``messageStart``,
``contentBlockStart``/``contentBlockDelta``/``contentBlockStop``, ``messageStop`` and
``metadata`` (usage, metrics). InvokeModel for an Anthropic model takes and answers the
Anthropic Messages body (``anthropic_version: bedrock-2023-05-31``) with Anthropic's usage
and the ``X-Amzn-Bedrock-Input-Token-Count``/``-Output-Token-Count`` headers (plus
``X-Amzn-Bedrock-Cache-Read-Input-Token-Count``/``-Cache-Write-...`` when the cache is
used). Errors name their type in ``x-amzn-ErrorType`` (``ThrottlingException`` 429,
``ValidationException`` 400). boto3 reaches it with ``endpoint_url``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fakes import anthropic_api
from fakes.eventstream import encode_event
from fakes.scenario import Answer, Recorder, Scenario, Tokens
from fakes.server import ServedApp

CACHE_READ_TOKENS = 1024
"""``cacheReadInputTokens`` under ``[cache:read]``."""
CACHE_WRITE_TOKENS = 768
"""``cacheWriteInputTokens`` under ``[cache:write]``."""
REPLY = "Paris is the capital of France."


def _error(status: int, scenario: Scenario) -> Response:
    kind = "ThrottlingException" if status == 429 else "ValidationException"
    message = "Too many requests, please wait before trying again." if status == 429 \
        else f"Invalid request (case {scenario.case})"
    return JSONResponse({"message": message}, status_code=status,
                        headers={"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/"
                                                     "coral/com.amazon.bedrock/"})


def converse_usage(n: int, scenario: Scenario) -> dict[str, int]:
    """Converse ``usage`` of answer number ``n`` (inputTokens EXCLUSIVE of cache)."""
    usage = {"inputTokens": 400 + 11 * n, "outputTokens": 60 + 3 * n}
    if scenario.cache_read:
        usage["cacheReadInputTokens"] = CACHE_READ_TOKENS
    if scenario.cache_write:
        usage["cacheWriteInputTokens"] = CACHE_WRITE_TOKENS
    usage["totalTokens"] = sum(usage.values())
    return usage


def converse_tokens(usage: dict[str, int]) -> Tokens:
    """Converse usage in MentatLab's meaning: input = input + cache read + cache write."""
    read = usage.get("cacheReadInputTokens", 0)
    write = usage.get("cacheWriteInputTokens", 0)
    return Tokens(usage["inputTokens"] + read + write, usage["outputTokens"], read, write)


def _content(body: dict[str, Any], n: int) -> tuple[list[dict[str, Any]], str]:
    tools = ((body.get("toolConfig") or {}).get("tools")) or []
    messages = body.get("messages") or []
    last = messages[-1].get("content", []) if messages else []
    answered = any(isinstance(c, dict) and "toolResult" in c for c in last)
    if tools and not answered:
        spec = tools[0].get("toolSpec", {})
        return [{"toolUse": {"toolUseId": f"tooluse_{n}", "name": spec.get("name", "tool"),
                             "input": {"city": "Paris"}}}], "tool_use"
    return [{"text": REPLY}], "end_turn"


def _stream_events(content: list[dict[str, Any]], stop: str,
                   usage: dict[str, int]) -> Iterator[bytes]:
    yield encode_event("messageStart", {"role": "assistant"})
    for index, block in enumerate(content):
        if "toolUse" in block:
            use = block["toolUse"]
            yield encode_event("contentBlockStart", {"contentBlockIndex": index, "start": {
                "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}})
            yield encode_event("contentBlockDelta", {"contentBlockIndex": index, "delta": {
                "toolUse": {"input": json.dumps(use["input"])}}})
        else:
            for word in block["text"].split(" "):
                yield encode_event("contentBlockDelta", {"contentBlockIndex": index,
                                                         "delta": {"text": word + " "}})
        yield encode_event("contentBlockStop", {"contentBlockIndex": index})
    yield encode_event("messageStop", {"stopReason": stop})
    yield encode_event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}})


def create_app(recorder: Recorder) -> Starlette:
    """The Starlette app: ``/model/{modelId}/converse``, ``/converse-stream``, ``/invoke``."""

    async def converse(request: Request) -> Response:
        model = request.path_params["model_id"]
        stream = request.url.path.endswith("-stream")
        api = "converse-stream" if stream else "converse"
        body = await request.json()
        scenario = Scenario.from_body(body)
        failed = recorder.should_fail(scenario)
        if failed is not None:
            recorder.record(Answer("aws.bedrock", api, scenario.case, failed, model, stream,
                                   {}, None))
            return _error(failed, scenario)
        n = recorder.next_index()
        usage = converse_usage(n, scenario)
        recorder.record(Answer("aws.bedrock", api, scenario.case, 200, model, stream, usage,
                               converse_tokens(usage)))
        content, stop = _content(body, n)
        if stream:
            return StreamingResponse(_stream_events(content, stop, usage),
                                     media_type="application/vnd.amazon.eventstream")
        return JSONResponse({"output": {"message": {"role": "assistant", "content": content}},
                             "stopReason": stop, "usage": usage,
                             "metrics": {"latencyMs": 12}})

    async def invoke(request: Request) -> Response:
        model = request.path_params["model_id"]
        body = await request.json()
        scenario = Scenario.from_body(body)
        failed = recorder.should_fail(scenario)
        if failed is not None:
            recorder.record(Answer("aws.bedrock", "invoke", scenario.case, failed, model,
                                   False, {}, None))
            return _error(failed, scenario)
        usage = anthropic_api.usage_for(recorder.next_index(), scenario)
        recorder.record(Answer("aws.bedrock", "invoke", scenario.case, 200, model, False,
                               usage, anthropic_api.tokens_of(usage)))
        message = anthropic_api.message_for(body, f"msg_bdrk_{recorder.next_index():04d}",
                                            model, usage)
        headers = {"X-Amzn-Bedrock-Input-Token-Count": str(usage["input_tokens"]),
                   "X-Amzn-Bedrock-Output-Token-Count": str(usage["output_tokens"])}
        if scenario.cache_read:
            headers["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = str(
                usage["cache_read_input_tokens"])
        if scenario.cache_write:
            headers["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = str(
                usage["cache_creation_input_tokens"])
        return JSONResponse(message, headers=headers)

    return Starlette(routes=[
        Route("/model/{model_id:str}/converse", converse, methods=["POST"]),
        Route("/model/{model_id:str}/converse-stream", converse, methods=["POST"]),
        Route("/model/{model_id:str}/invoke", invoke, methods=["POST"]),
    ])


class FakeBedrock(ServedApp):
    """The fake Bedrock runtime; ``url`` is boto3's ``endpoint_url``."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        super().__init__(create_app(self.recorder), "bedrock")
