"""Prompt prefix: a hash of the first characters of each LLM call's input, never the text.

The processor ``prompt_prefix`` (after ``classify``) sets three columns of every chat or
completion call whose input messages were recorded (docs/decisions/0013-recommendations.md):

* ``prompt_chars``: characters of the call's whole input text (0 when none recorded);
* ``prompt_prefix_hash``: 64-bit BLAKE2b (``hashlib.blake2b(digest_size=8)``, big-endian)
  of the first :data:`PREFIX_CHARS` characters of that text, UTF-8 encoded; 0 when the text
  is shorter (too short for any provider to cache) or absent;
* ``prompt_prefix_chars``: the characters hashed (:data:`PREFIX_CHARS`, or 0), so that a
  later change of :data:`PREFIX_CHARS` never makes two different prefixes look alike.

**Why 4,096 characters.** Providers cache a prompt prefix only from a minimum length:
OpenAI caches prompts of at least 1,024 tokens (in 128-token steps); Anthropic's minimum
cacheable prompt is 1,024 tokens on Sonnet 4/4.5 and Opus 4/4.1, 2,048 on Haiku 3/3.5 and
4,096 on Opus 4.5/4.6 and Haiku 4.5; Google's implicit caching starts at 1,024 (Flash) to
2,048-4,096 tokens (Pro). These are the figures of the providers' prompt-caching pages as
we know them (platform.openai.com/docs/guides/prompt-caching,
docs.anthropic.com/en/docs/build-with-claude/prompt-caching, as quoted in
anthropics/anthropic-sdk-python#1194; ai.google.dev/gemini-api/docs/caching), not read
from a live page at build time; they change with new models. At about
4 characters per English token (OpenAI's rule of thumb), 4,096 characters is ~1,024
tokens: the smallest prefix any of them caches. Two calls with the same hash share at
least those characters; the recommendation then checks the tokens themselves (see
:mod:`mentatlab.analytics.recommendations`).

**The text.** Messages in order, each as ``role``, a newline, the content, a newline, with
the system instructions first: so the system prompt and the first messages make up the
prefix, the part an application repeats call after call. Content that is not a string
(parts, tool calls) is written as JSON with sorted keys, so equal content hashes equally.
Where the input comes from, first found wins (:data:`SOURCES`): OTel GenAI
``gen_ai.system_instructions`` + ``gen_ai.input.messages`` (semconv ≥ 1.37), OpenLLMetry
``gen_ai.prompt.<i>.role/content``, a plain ``gen_ai.prompt`` string, OpenInference
``llm.input_messages.<i>.message.role/content`` then ``input.value``, Vercel AI SDK
``ai.prompt.messages`` then ``ai.prompt``, and the older GenAI events
(``gen_ai.system.message``, ``gen_ai.user.message``…, ``gen_ai.content.prompt``). The
canonical span keeps these payloads only inside ``attributes``/``events`` (JSON text, each
value cut at ``max_attribute_value_bytes``): this module reads them, stores the hash and
the lengths, and never copies the text anywhere.

Batch work: the candidate spans are picked by a substring test on their JSON text, only
those are parsed (orjson), and the hashes of the whole batch are computed in one pass.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import orjson

from mentatlab.model.span import CanonicalSpan, Operation

__all__ = ["PREFIX_CHARS", "SOURCES", "PromptPrefix", "hash_prefix", "input_text"]

PREFIX_CHARS: Final = 4096
"""Characters hashed: ~1,024 tokens, the smallest prompt any provider caches (module doc)."""
_CALLS: Final = frozenset({Operation.CHAT, Operation.COMPLETION})
"""Operations whose input a provider may cache (embeddings are not cached)."""
_OI_MESSAGE = re.compile(r"^llm\.input_messages\.(\d+)\.message\.(role|content)$")
_OLLM_MESSAGE = re.compile(r"^gen_ai\.prompt\.(\d+)\.(role|content)$")
_EVENT_ROLES: Final = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                       "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}

Messages = list[tuple[str, str]]
"""(role, content text) pairs in order."""


def _text(value: Any) -> str:
    """Content as text: a string as is, anything else as JSON with sorted keys."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _json(value: Any) -> Any:
    """A JSON-encoded attribute decoded (a structured one as is); None if unreadable."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def _parts_text(parts: Any) -> str:
    """The OTel GenAI ``parts`` of a message: text parts' content, others as JSON."""
    if not isinstance(parts, list):
        return _text(parts)
    out = []
    for part in parts:
        if isinstance(part, dict) and part.get("type") == "text" and "content" in part:
            out.append(_text(part["content"]))
        else:
            out.append(_text(part))
    return "".join(out)


def _genai_messages(attrs: Mapping[str, Any], events: Sequence[Any]) -> Messages | None:
    messages = _json(attrs.get("gen_ai.input.messages"))
    if not isinstance(messages, list):
        return None
    out: Messages = []
    system = _json(attrs.get("gen_ai.system_instructions"))
    if system is not None:
        out.append(("system", _parts_text(system)))
    for message in messages:
        if isinstance(message, dict):
            out.append((str(message.get("role", "")), _parts_text(message.get("parts", ""))))
    return out


def _indexed(attrs: Mapping[str, Any], pattern: re.Pattern[str]) -> Messages | None:
    found: dict[int, dict[str, str]] = {}
    for key, value in attrs.items():
        match = pattern.match(key)
        if match is not None:
            found.setdefault(int(match[1]), {})[match[2]] = _text(value)
    if not found:
        return None
    return [(m.get("role", ""), m.get("content", "")) for _, m in sorted(found.items())]


def _openllmetry(attrs: Mapping[str, Any], events: Sequence[Any]) -> Messages | None:
    return _indexed(attrs, _OLLM_MESSAGE) if "gen_ai.prompt.0.content" in attrs else None


def _plain_prompt(attrs: Mapping[str, Any], events: Sequence[Any]) -> Messages | None:
    value = attrs.get("gen_ai.prompt")
    return [("", _text(value))] if value is not None else None


def _openinference(attrs: Mapping[str, Any], events: Sequence[Any]) -> Messages | None:
    if "llm.input_messages.0.message.role" in attrs or \
            "llm.input_messages.0.message.content" in attrs:
        return _indexed(attrs, _OI_MESSAGE)
    value = attrs.get("input.value")
    return [("", _text(value))] if value is not None else None


def _vercel(attrs: Mapping[str, Any], events: Sequence[Any]) -> Messages | None:
    messages = _json(attrs.get("ai.prompt.messages"))
    if isinstance(messages, list):
        return [(str(m.get("role", "")), _text(m.get("content", "")))
                for m in messages if isinstance(m, dict)]
    value = attrs.get("ai.prompt")
    return [("", _text(value))] if value is not None else None


def _genai_events(attrs: Mapping[str, Any], events: Sequence[Any]) -> Messages | None:
    out: Messages = []
    for event in events:
        if not isinstance(event, dict):
            continue
        name = event.get("name")
        event_attrs = event.get("attributes") or {}
        role = _EVENT_ROLES.get(str(name))
        if role is not None:
            out.append((role, _text(event_attrs.get("content", ""))))
        elif name == "gen_ai.content.prompt" and "gen_ai.prompt" in event_attrs:
            out.append(("", _text(event_attrs["gen_ai.prompt"])))
    return out or None


Source = Callable[[Mapping[str, Any], Sequence[Any]], "Messages | None"]
SOURCES: Final[tuple[tuple[str, str, Source], ...]] = (
    ("genai", '"gen_ai.input.messages"', _genai_messages),
    ("openllmetry", '"gen_ai.prompt.0.', _openllmetry),
    ("genai-prompt", '"gen_ai.prompt"', _plain_prompt),
    ("openinference", '"llm.input_messages.', _openinference),
    ("openinference-input", '"input.value"', _openinference),
    ("vercel-ai", '"ai.prompt', _vercel),
)
"""Where input messages are read from, in order: (name, marker in the attributes JSON that
makes the span a candidate, reader). The GenAI events are read last, from ``events``."""
_EVENT_MARKERS: Final = ('"gen_ai.system.message"', '"gen_ai.user.message"',
                         '"gen_ai.content.prompt"')


def input_text(span: CanonicalSpan) -> str | None:
    """The input text of one span as hashed (module doc), or None when none is recorded."""
    attrs: Mapping[str, Any] | None = None
    for _name, marker, read in SOURCES:
        if marker in span.attributes:
            if attrs is None:
                decoded = _json(span.attributes)
                attrs = decoded if isinstance(decoded, dict) else {}
            messages = read(attrs, ())
            if messages:
                return "".join(f"{role}\n{content}\n" for role, content in messages)
    if any(marker in span.events for marker in _EVENT_MARKERS):
        events = _json(span.events)
        messages = _genai_events({}, events if isinstance(events, list) else ())
        if messages:
            return "".join(f"{role}\n{content}\n" for role, content in messages)
    return None


def hash_prefix(text: str) -> int:
    """64-bit BLAKE2b of ``text[:PREFIX_CHARS]`` (UTF-8) as an unsigned int, never 0.

    Raises:
        ValueError: ``text`` is shorter than :data:`PREFIX_CHARS` characters.
    """
    if len(text) < PREFIX_CHARS:
        raise ValueError(f"Expected at least {PREFIX_CHARS} characters, got {len(text)}")
    digest = hashlib.blake2b(text[:PREFIX_CHARS].encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1  # 0 means "no hash"


class PromptPrefix:
    """Processor ``prompt_prefix``: sets the prompt columns of a batch's LLM calls.

    ``prompt_chars``, ``prompt_prefix_hash`` and ``prompt_prefix_chars`` of the chat and
    completion calls (module doc). Pure; spans are changed in place (the pipeline owns
    them). Spans with no input recorded keep 0 in all three.
    """

    name = "prompt_prefix"

    def __call__(self, spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
        """Hash the input prefix of the calls among N spans; returns the same N spans."""
        markers = (*(m for _, m, _ in SOURCES), *_EVENT_MARKERS)
        candidates = [s for s in spans if s.operation in _CALLS and not s.usage_is_rollup
                      and any(m in s.attributes or m in s.events for m in markers)]
        if not candidates:
            return spans
        texts = [input_text(s) for s in candidates]
        hashes = [hash_prefix(t) if t is not None and len(t) >= PREFIX_CHARS else 0
                  for t in texts]
        for span, text, digest in zip(candidates, texts, hashes, strict=True):
            if text is None:
                continue
            span.prompt_chars = min(len(text), 2**32 - 1)
            if digest:
                span.prompt_prefix_hash = digest
                span.prompt_prefix_chars = PREFIX_CHARS
        return spans
