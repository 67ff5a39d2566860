"""A fake OpenAI server: Chat Completions and Responses, plain and streaming (SSE).

Formats follow the OpenAI API reference: chat ``usage.prompt_tokens`` is inclusive of
``prompt_tokens_details.cached_tokens`` and ``completion_tokens`` of
``completion_tokens_details.reasoning_tokens``; the Responses API reports
``input_tokens``/``input_tokens_details.cached_tokens`` and
``output_tokens``/``output_tokens_details.reasoning_tokens`` with the same inclusivity.
Streaming chat sends usage in a last chunk with empty ``choices`` when
``stream_options.include_usage`` is set; streaming Responses sends it in
``response.completed``. Errors use the ``{"error": {...}}`` shape; a 429 carries
``Retry-After``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fakes.scenario import (
    RETRY_AFTER_S,
    Answer,
    Recorder,
    Scenario,
    Tokens,
    is_reasoning_model,
)
from fakes.server import ServedApp

SNAPSHOTS = {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
             "o4-mini": "o4-mini-2025-04-16", "gpt-5-mini": "gpt-5-mini-2025-08-07"}
"""Requested model → the dated snapshot OpenAI answers with."""

CACHED_TOKENS = 1280
"""``cached_tokens`` reported under ``[cache:read]`` (a multiple of 128 above 1,024)."""

REPLY = "Paris is the capital of France."


def _usage_numbers(n: int, model: str, cache_read: bool) -> tuple[int, int, int, int]:
    """``(prompt, completion, cached, reasoning)`` tokens of answer number ``n``."""
    prompt = 1500 + 11 * n
    reasoning = 24 + n if is_reasoning_model(model) else 0
    completion = 40 + 3 * n + reasoning
    return prompt, completion, (CACHED_TOKENS if cache_read else 0), reasoning


def _error(status: int, scenario: Scenario) -> Response:
    if status == 429:
        body = {"error": {"message": "Rate limit reached for requests", "type": "requests",
                          "param": None, "code": "rate_limit_exceeded"}}
        return JSONResponse(body, status_code=429, headers={
            "retry-after": str(RETRY_AFTER_S), "retry-after-ms": "50"})
    body = {"error": {"message": f"Invalid request (case {scenario.case})",
                      "type": "invalid_request_error", "param": "messages",
                      "code": "invalid_value"}}
    return JSONResponse(body, status_code=status)


def _tool_call_wanted(body: dict[str, Any], items_key: str) -> dict[str, Any] | None:
    """The first offered function tool when the request's last item is not a tool result."""
    tools = body.get("tools") or []
    items = body.get(items_key)
    last = items[-1] if isinstance(items, list) and items else {}
    if not tools or not isinstance(last, dict):
        return None
    if last.get("role") == "tool" or last.get("type") == "function_call_output":
        return None
    tool = tools[0]
    fn = tool.get("function", tool)  # chat: {"type", "function": {...}}; responses: flat
    return {"name": fn.get("name", "tool"), "arguments": json.dumps({"city": "Paris"})}


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def create_app(recorder: Recorder) -> Starlette:
    """The Starlette app: ``POST /v1/chat/completions`` and ``POST /v1/responses``."""

    def record(api: str, scenario: Scenario, status: int, model: str, stream: bool,
               usage: dict[str, Any], tokens: Tokens | None) -> None:
        recorder.record(Answer("openai", api, scenario.case, status, model, stream, usage,
                               tokens))

    async def chat(request: Request) -> Response:
        body = await request.json()
        scenario = Scenario.from_body(body)
        model = str(body.get("model", ""))
        stream = bool(body.get("stream"))
        failed = recorder.should_fail(scenario)
        if failed is not None:
            record("chat", scenario, failed, model, stream, {}, None)
            return _error(failed, scenario)
        answered_model = SNAPSHOTS.get(model, model)
        prompt, completion, cached, reasoning = _usage_numbers(
            recorder.next_index(), model, scenario.cache_read)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion,
                 "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": reasoning,
                                               "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0,
                                               "rejected_prediction_tokens": 0}}
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        sent_usage = usage if (not stream or include_usage) else {}
        record("chat", scenario, 200, answered_model, stream, sent_usage,
               Tokens(prompt, completion, cached, 0, reasoning) if sent_usage else None)
        tool = _tool_call_wanted(body, "messages")
        completion_id = f"chatcmpl-{recorder.next_index()}"
        created = int(time.time())
        if tool is not None:
            message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None,
                                       "tool_calls": [{"id": f"call_{completion_id}",
                                                       "type": "function",
                                                       "function": tool}]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": REPLY, "refusal": None}
            finish = "stop"
        if not stream:
            return JSONResponse({
                "id": completion_id, "object": "chat.completion", "created": created,
                "model": answered_model, "system_fingerprint": "fp_fake",
                "service_tier": "default",
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": finish}],
                "usage": usage})
        return StreamingResponse(
            _chat_chunks(completion_id, created, answered_model, message, finish,
                         usage if include_usage else None),
            media_type="text/event-stream")

    async def responses(request: Request) -> Response:
        body = await request.json()
        scenario = Scenario.from_body(body)
        model = str(body.get("model", ""))
        stream = bool(body.get("stream"))
        failed = recorder.should_fail(scenario)
        if failed is not None:
            record("responses", scenario, failed, model, stream, {}, None)
            return _error(failed, scenario)
        answered_model = SNAPSHOTS.get(model, model)
        prompt, completion, cached, reasoning = _usage_numbers(
            recorder.next_index(), model, scenario.cache_read)
        usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
                 "output_tokens": completion,
                 "output_tokens_details": {"reasoning_tokens": reasoning},
                 "total_tokens": prompt + completion}
        record("responses", scenario, 200, answered_model, stream, usage,
               Tokens(prompt, completion, cached, 0, reasoning))
        response_id = f"resp_{recorder.next_index()}"
        output: list[dict[str, Any]] = []
        if reasoning:
            output.append({"type": "reasoning", "id": f"rs_{response_id}", "summary": []})
        tool = _tool_call_wanted(body, "input")
        if tool is not None:
            output.append({"type": "function_call", "id": f"fc_{response_id}",
                           "call_id": f"call_{response_id}", "status": "completed", **tool})
        else:
            output.append({"type": "message", "id": f"msg_{response_id}",
                           "status": "completed", "role": "assistant",
                           "content": [{"type": "output_text", "text": REPLY,
                                        "annotations": [], "logprobs": []}]})
        response = {
            "id": response_id, "object": "response", "created_at": int(time.time()),
            "status": "completed", "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": None,
            "model": answered_model, "output": output, "parallel_tool_calls": True,
            "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
            "store": True, "temperature": 1.0, "text": {"format": {"type": "text"}},
            "tool_choice": "auto", "tools": body.get("tools") or [], "top_p": 1.0,
            "truncation": "disabled", "usage": usage, "user": None, "metadata": {}}
        if not stream:
            return JSONResponse(response)
        return StreamingResponse(_response_events(response), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/v1/responses", responses, methods=["POST"])])


def _chat_chunks(completion_id: str, created: int, model: str, message: dict[str, Any],
                 finish: str, usage: dict[str, Any] | None) -> Iterator[bytes]:
    """Chat Completions streaming chunks: role, content or tool-call deltas, finish, usage."""
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": "fp_fake"}
    extra = {"usage": None} if usage is not None else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish_reason}], **extra})

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        yield chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"],
                                                  "arguments": ""}}]})
        args = call["function"]["arguments"]
        for part in (args[: len(args) // 2], args[len(args) // 2:]):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
    else:
        for word in REPLY.split(" "):
            yield chunk({"content": word + " "})
    yield chunk({}, finish)
    if usage is not None:
        yield _sse({**base, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def _response_events(response: dict[str, Any]) -> Iterator[bytes]:
    """Responses API streaming events, ``response.created`` … ``response.completed``."""
    seq = 0

    def event(kind: str, **data: Any) -> bytes:
        nonlocal seq
        seq += 1
        return _sse({"type": kind, "sequence_number": seq, **data}, kind)

    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            yield event("response.output_item.added", output_index=index,
                        item={**item, "status": "in_progress", "content": []})
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield event("response.content_part.added", item_id=item["id"],
                        output_index=index, content_index=0, part=part)
            for word in REPLY.split(" "):
                yield event("response.output_text.delta", item_id=item["id"],
                            output_index=index, content_index=0, delta=word + " ",
                            logprobs=[])
            yield event("response.output_text.done", item_id=item["id"], output_index=index,
                        content_index=0, text=REPLY, logprobs=[])
            yield event("response.content_part.done", item_id=item["id"], output_index=index,
                        content_index=0, part=item["content"][0])
        elif item["type"] == "function_call":
            yield event("response.output_item.added", output_index=index,
                        item={**item, "status": "in_progress", "arguments": ""})
            yield event("response.function_call_arguments.delta", item_id=item["id"],
                        output_index=index, delta=item["arguments"])
            yield event("response.function_call_arguments.done", item_id=item["id"],
                        output_index=index, arguments=item["arguments"], name=item["name"])
        else:
            yield event("response.output_item.added", output_index=index, item=item)
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=response)


class FakeOpenAI(ServedApp):
    """The fake OpenAI server; ``base_url`` is what ``openai.OpenAI(base_url=...)`` takes."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        super().__init__(create_app(self.recorder), "openai")

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"
