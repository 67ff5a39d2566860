"""A small OpenAI-compatible HTTP server with realistic, deterministic usage.

It answers ``POST /v1/chat/completions`` (plain and streaming, with
``stream_options.include_usage``) and ``POST /v1/embeddings`` the way OpenAI does:

* ``prompt_tokens`` is computed from the messages (about 4 characters a token, plus a
  small per-message overhead), ``completion_tokens`` from the text it returns;
* ``prompt_tokens_details.cached_tokens`` is reported when a request repeats a message
  prefix already seen and that prefix is at least 1,024 tokens, in steps of 128 tokens
  (OpenAI's prompt-caching rule);
* reasoning models (``o1``, ``o3``, ``o4``, ``gpt-5`` families) report
  ``completion_tokens_details.reasoning_tokens``, included in ``completion_tokens``;
* the response ``model`` is the dated snapshot (``gpt-4o-mini`` answers as
  ``gpt-4o-mini-2024-07-18``);
* when ``tools`` are given and the last message is not a tool result, it calls the first
  tool with arguments built from the tool's JSON schema.

Failures can be injected, so clients retry: a seeded random draw per request (rate limit
429, server error 500, or a slow answer that trips client timeouts), or the request header
``x-fake-fail: rate_limit|server_error|slow`` to force one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "SNAPSHOTS",
    "FakeOpenAIConfig",
    "FakeOpenAIServer",
    "count_tokens",
    "create_app",
    "is_reasoning_model",
]

logger = logging.getLogger(__name__)

SNAPSHOTS: dict[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31",
    "o4-mini": "o4-mini-2025-04-16",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5": "gpt-5-2025-08-07",
}
"""Request model -> the dated snapshot OpenAI answers with; other names are echoed."""

_EMBEDDING_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
_CACHE_MIN_TOKENS = 1024
_CACHE_STEP_TOKENS = 128
_TOKENS_PER_MESSAGE = 3
_REPLY_PRIMING_TOKENS = 3


def count_tokens(text: str) -> int:
    """Deterministic token estimate: one token per 4 characters, at least 1 for non-empty text.

    Args:
        text: Any text.

    Returns:
        The token count (tokens).
    """
    return math.ceil(len(text) / 4) if text else 0


def is_reasoning_model(model: str) -> bool:
    """Whether ``model`` reports reasoning tokens (o-series and gpt-5 families)."""
    return model.startswith(("o1", "o3", "o4", "gpt-5"))


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    calls = message.get("tool_calls") or []
    args = " ".join(str(c.get("function", {}).get("arguments", "")) for c in calls)
    return f"{content} {args}".strip()


def _message_tokens(message: dict[str, Any]) -> int:
    return _TOKENS_PER_MESSAGE + count_tokens(_message_text(message))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


@dataclass
class FakeOpenAIConfig:
    """How the fake server misbehaves. Probabilities are per request, drawn from ``seed``."""

    seed: int = 7
    rate_limit_p: float = 0.0
    """Probability of a 429 rate-limit answer."""
    server_error_p: float = 0.0
    """Probability of a 500 answer."""
    slow_p: float = 0.0
    """Probability of a slow answer (``slow_s`` late)."""
    slow_s: float = 2.0
    """Delay of a slow answer, in seconds."""
    latency_s: float = 0.0
    """Delay added to every answer, in seconds (makes spans look like real calls)."""
    retry_after_ms: int = 20
    """``retry-after-ms`` sent with a 429, in milliseconds."""


@dataclass
class _State:
    config: FakeOpenAIConfig
    rng: random.Random
    seen_prefixes: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    responses: list[dict[str, Any]] = field(default_factory=list)
    """``{"id", "model", "usage"}`` of every successful answer, in order."""

    def cached_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Tokens of the longest already-seen message prefix, cache rules applied."""
        prefix_tokens, cached = 0, 0
        for k, message in enumerate(messages, start=1):
            prefix_tokens += _message_tokens(message)
            key = _digest(messages[:k])
            if key in self.seen_prefixes and prefix_tokens >= _CACHE_MIN_TOKENS:
                cached = (prefix_tokens // _CACHE_STEP_TOKENS) * _CACHE_STEP_TOKENS
            self.seen_prefixes.add(key)
        return cached

    def failure(self, request: Request) -> str:
        forced = request.headers.get("x-fake-fail", "")
        if forced:
            return forced
        draw = self.rng.random()
        cfg = self.config
        if draw < cfg.rate_limit_p:
            return "rate_limit"
        if draw < cfg.rate_limit_p + cfg.server_error_p:
            return "server_error"
        if draw < cfg.rate_limit_p + cfg.server_error_p + cfg.slow_p:
            return "slow"
        return ""


def _error(status: int, message: str, kind: str, code: str | None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _maybe_fail(state: _State, request: Request) -> Response | None:
    failure = state.failure(request)
    if failure:
        state.counts[failure] += 1
    if failure == "rate_limit":
        return _error(429, "Rate limit reached for requests (fake). Please try again.",
                      "requests", "rate_limit_exceeded",
                      {"retry-after-ms": str(state.config.retry_after_ms)})
    if failure == "server_error":
        return _error(500, "The server had an error while processing your request (fake).",
                      "server_error", None)
    if failure == "slow":
        await asyncio.sleep(state.config.slow_s)
    elif state.config.latency_s:
        await asyncio.sleep(state.config.latency_s)
    return None


def _tool_call(tool: dict[str, Any], seed: str) -> dict[str, Any]:
    fn = tool.get("function", {})
    props = fn.get("parameters", {}).get("properties", {})
    args = {}
    for name, schema in props.items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        args[name] = 3 if kind in ("integer", "number") else f"{name}-{seed[:6]}"
    return {"id": f"call_{seed[:24]}", "type": "function",
            "function": {"name": fn.get("name", "tool"), "arguments": json.dumps(args)}}


def _reply_text(seed: str, max_tokens: int | None) -> str:
    words = ["the", "agent", "found", "three", "results", "and", "summarised", "them",
             "for", "you", "with", "sources", "cited", "below", "in", "order"]
    n_words = 8 + int(seed[:4], 16) % 60
    text = " ".join(words[(int(seed[i % 60: i % 60 + 2], 16)) % len(words)]
                    for i in range(n_words))
    if max_tokens is not None:
        text = text[: max(4, max_tokens * 4)]
    return text.capitalize() + "."


def _completion(state: _State, body: dict[str, Any]) -> dict[str, Any]:
    """Build the full (non-streamed) chat completion for ``body``."""
    model = str(body.get("model", ""))
    messages: list[dict[str, Any]] = list(body.get("messages") or [])
    seed = _digest({k: v for k, v in body.items() if k not in ("stream", "stream_options")})
    prompt_tokens = sum(_message_tokens(m) for m in messages) + _REPLY_PRIMING_TOKENS
    cached = state.cached_tokens(messages)
    tools = body.get("tools") or []
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if tools and messages and messages[-1].get("role") != "tool":
        call = _tool_call(tools[int(seed[:2], 16) % len(tools)], seed)
        message["tool_calls"] = [call]
        visible = count_tokens(call["function"]["arguments"]) + 8
        finish = "tool_calls"
    else:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        message["content"] = _reply_text(seed, int(limit) if limit else None)
        visible = count_tokens(message["content"])
        finish = "stop"
    reasoning = 64 * (1 + int(seed[4:6], 16) % 8) if is_reasoning_model(model) else 0
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": visible + reasoning,
        "total_tokens": prompt_tokens + visible + reasoning,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }
    return {
        "id": f"chatcmpl-{seed[:29]}", "object": "chat.completion", "created": int(time.time()),
        "model": SNAPSHOTS.get(model, model), "system_fingerprint": "fp_fake0001",
        "service_tier": "default",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


async def _stream(completion: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    message = completion["choices"][0]["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                        "finish_reason": finish}]}
        if include_usage:
            payload["usage"] = None
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    if message.get("tool_calls"):
        calls = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
        yield chunk({"tool_calls": calls})
    else:
        text: str = message["content"]
        step = max(1, len(text) // 5)
        for i in range(0, len(text), step):
            await asyncio.sleep(0)
            yield chunk({"content": text[i: i + step]})
    yield chunk({}, completion["choices"][0]["finish_reason"])
    if include_usage:
        final = {**base, "choices": [], "usage": completion["usage"]}
        yield b"data: " + json.dumps(final).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _embedding(text: str, dims: int, as_base64: bool) -> str | list[float]:
    rng = random.Random(_digest(text))
    vector = [rng.uniform(-1.0, 1.0) for _ in range(dims)]
    if as_base64:
        return base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
    return vector


def create_app(config: FakeOpenAIConfig | None = None) -> Starlette:
    """The fake OpenAI ASGI app; ``app.state.fake`` holds its counters (``counts``).

    Args:
        config: Failure injection and latency; defaults to a well-behaved server.

    Returns:
        A Starlette application serving ``/v1/chat/completions`` and ``/v1/embeddings``.
    """
    cfg = config or FakeOpenAIConfig()
    state = _State(config=cfg, rng=random.Random(cfg.seed))

    async def chat(request: Request) -> Response:
        body = await request.json()
        state.counts["chat"] += 1
        failed = await _maybe_fail(state, request)
        if failed is not None:
            return failed
        if not body.get("model") or not body.get("messages"):
            return _error(400, "Expected 'model' and 'messages'", "invalid_request_error",
                          "missing_required_parameter")
        completion = _completion(state, body)
        state.responses.append({k: completion[k] for k in ("id", "model", "usage")})
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_stream(completion, include_usage),
                                     media_type="text/event-stream")
        return JSONResponse(completion)

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        state.counts["embeddings"] += 1
        failed = await _maybe_fail(state, request)
        if failed is not None:
            return failed
        model = str(body.get("model", ""))
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else [str(x) for x in raw or []]
        if not model or not inputs:
            return _error(400, "Expected 'model' and 'input'", "invalid_request_error",
                          "missing_required_parameter")
        dims = int(body.get("dimensions") or _EMBEDDING_DIMS.get(model, 1536))
        as_b64 = body.get("encoding_format") == "base64"
        tokens = sum(count_tokens(t) for t in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        state.responses.append({"id": "", "model": model, "usage": usage})
        return JSONResponse({
            "object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": _embedding(t, dims, as_b64)}
                     for i, t in enumerate(inputs)],
            "usage": usage,
        })

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
    ])
    app.state.fake = state
    return app


class FakeOpenAIServer:
    """The fake OpenAI app served by uvicorn in a background thread on 127.0.0.1.

    Use as a context manager; ``base_url`` is what ``openai.OpenAI(base_url=...)`` takes.
    """

    def __init__(self, config: FakeOpenAIConfig | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.app = create_app(config)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, log_level="warning", lifespan="off", access_log=False))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]},
                                        name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def counts(self) -> Counter[str]:
        """Requests served per kind (``chat``, ``embeddings``) and failures injected."""
        counts: Counter[str] = self.app.state.fake.counts
        return counts

    @property
    def responses(self) -> list[dict[str, Any]]:
        """``{"id", "model", "usage"}`` of every successful answer, in order."""
        responses: list[dict[str, Any]] = self.app.state.fake.responses
        return responses

    def start(self, timeout_s: float = 10.0) -> None:
        """Start serving and wait until the server accepts requests.

        Raises:
            RuntimeError: the server did not start within ``timeout_s`` seconds.
        """
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"Fake OpenAI server did not start on port {self.port}")
            time.sleep(0.01)
        logger.info("fake OpenAI server on %s", self.base_url)

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> FakeOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
