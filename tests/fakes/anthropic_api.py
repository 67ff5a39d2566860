"""A fake Anthropic server: the Messages API, plain and streaming (SSE).

Formats follow Anthropic's API reference: ``usage.input_tokens`` EXCLUDES the cache
(``cache_creation_input_tokens`` and ``cache_read_input_tokens`` are separate, "total input
tokens = input_tokens + cache_creation_input_tokens + cache_read_input_tokens");
streaming sends the input-side usage in ``message_start`` and the CUMULATIVE usage
(``input_tokens``, both cache counts and ``output_tokens``, ``MessageDeltaUsage``) in
``message_delta``; ``tool_use`` content blocks stream their input as
``input_json_delta``. Errors use ``{"type": "error", "error": {...}}``; a 429 carries
``retry-after``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fakes.scenario import RETRY_AFTER_S, Answer, Recorder, Scenario, Tokens
from fakes.server import ServedApp

CACHE_READ_TOKENS = 2048
"""``cache_read_input_tokens`` under ``[cache:read]``."""
CACHE_WRITE_TOKENS = 1536
"""``cache_creation_input_tokens`` under ``[cache:write]``."""
REPLY = "Paris is the capital of France."


def usage_for(n: int, scenario: Scenario) -> dict[str, Any]:
    """Anthropic ``usage`` of answer number ``n`` (input EXCLUSIVE of cache)."""
    write = CACHE_WRITE_TOKENS if scenario.cache_write else 0
    return {"input_tokens": 300 + 11 * n,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": CACHE_READ_TOKENS if scenario.cache_read else 0,
            "cache_creation": {"ephemeral_5m_input_tokens": write,
                               "ephemeral_1h_input_tokens": 0},
            "output_tokens": 50 + 3 * n, "service_tier": "standard"}


def tokens_of(usage: dict[str, Any]) -> Tokens:
    """Anthropic usage in MentatLab's meaning: input = input + cache read + cache creation."""
    read = usage.get("cache_read_input_tokens") or 0
    write = usage.get("cache_creation_input_tokens") or 0
    return Tokens(usage["input_tokens"] + read + write, usage["output_tokens"], read, write)


def error_response(status: int, scenario: Scenario) -> Response:
    """Anthropic's error shape; 429 ``rate_limit_error`` with ``retry-after``."""
    if status == 429:
        return JSONResponse({"type": "error", "error": {
            "type": "rate_limit_error",
            "message": "Number of requests has exceeded your rate limit"}},
            status_code=429, headers={"retry-after": str(RETRY_AFTER_S),
                                      "retry-after-ms": "50"})
    return JSONResponse({"type": "error", "error": {
        "type": "invalid_request_error", "message": f"Invalid request (case {scenario.case})"}},
        status_code=status)


def message_for(body: dict[str, Any], message_id: str, model: str,
                usage: dict[str, Any]) -> dict[str, Any]:
    """A complete Messages API answer: text, or a ``tool_use`` block when tools are offered."""
    tools = body.get("tools") or []
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    tool_result = isinstance(content, list) and any(
        isinstance(c, dict) and c.get("type") == "tool_result" for c in content)
    if tools and not tool_result:
        blocks: list[dict[str, Any]] = [
            {"type": "tool_use", "id": f"toolu_{message_id}", "name": tools[0]["name"],
             "input": {"city": "Paris"}}]
        stop = "tool_use"
    else:
        blocks = [{"type": "text", "text": REPLY}]
        stop = "end_turn"
    return {"id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage}


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def message_events(message: dict[str, Any]) -> Iterator[bytes]:
    """The streaming events of ``message``: ``message_start`` … ``message_stop``."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    yield _sse("message_start", {"message": {**message, "content": [], "stop_reason": None,
                                             "usage": start_usage}})
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            yield _sse("content_block_start", {"index": index,
                                               "content_block": {**block, "input": {}}})
            raw = json.dumps(block["input"])
            for part in (raw[: len(raw) // 2], raw[len(raw) // 2:]):
                yield _sse("content_block_delta", {"index": index, "delta": {
                    "type": "input_json_delta", "partial_json": part}})
        else:
            yield _sse("content_block_start", {"index": index,
                                               "content_block": {"type": "text", "text": ""}})
            yield _sse("ping", {})
            for word in block["text"].split(" "):
                yield _sse("content_block_delta", {"index": index, "delta": {
                    "type": "text_delta", "text": word + " "}})
        yield _sse("content_block_stop", {"index": index})
    yield _sse("message_delta", {"delta": {"stop_reason": message["stop_reason"],
                                           "stop_sequence": None},
                                 "usage": {k: usage[k] for k in (
                                     "input_tokens", "cache_creation_input_tokens",
                                     "cache_read_input_tokens", "output_tokens")}})
    yield _sse("message_stop", {})


def create_app(recorder: Recorder) -> Starlette:
    """The Starlette app: ``POST /v1/messages``."""

    async def messages(request: Request) -> Response:
        body = await request.json()
        scenario = Scenario.from_body(body)
        model = str(body.get("model", ""))
        stream = bool(body.get("stream"))
        failed = recorder.should_fail(scenario)
        if failed is not None:
            recorder.record(Answer("anthropic", "messages", scenario.case, failed, model,
                                   stream, {}, None))
            return error_response(failed, scenario)
        usage = usage_for(recorder.next_index(), scenario)
        recorder.record(Answer("anthropic", "messages", scenario.case, 200, model, stream,
                               usage, tokens_of(usage)))
        message = message_for(body, f"msg_{recorder.next_index():04d}", model, usage)
        if not stream:
            return JSONResponse(message)
        return StreamingResponse(message_events(message), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


class FakeAnthropic(ServedApp):
    """The fake Anthropic server; ``url`` is what ``anthropic.Anthropic(base_url=...)`` takes."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        super().__init__(create_app(self.recorder), "anthropic")
