"""What a fake answers, decided from the request, and the record of every answer.

A driver steers the fakes with tags anywhere in the request body (normally the user
message), so any client or framework that passes the prompt through can use them:

* ``[case:ID]``: the test case the call belongs to (recorded with the answer);
* ``[cache:read]``, ``[cache:write]``, ``[cache:read+write]``: report prompt-cache reads
  and/or writes in the usage (each provider in its own fields);
* ``[fail:429]``: the first request of the case is refused with 429 and ``Retry-After``,
  later ones succeed (the client retries); ``[fail:400]``: every request is refused with 400.

Reasoning tokens are reported for reasoning models (``o1``/``o3``/``o4``/``gpt-5``); a tool
call is answered when the request offers tools and its last message is not a tool result.

Usage numbers differ on every answer (a running sequence ``n``), so a stored span matches
exactly one answer.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

_CASE = re.compile(r"\[case:([\w.:-]+)\]")
_CACHE = re.compile(r"\[cache:(read\+write|read|write)\]")
_FAIL = re.compile(r"\[fail:(429|400)\]")
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")

RETRY_AFTER_S = 1
"""``Retry-After`` sent with a 429 (seconds); ``retry-after-ms`` says 50 ms for clients
that read it (the OpenAI and Anthropic SDKs prefer it)."""


def is_reasoning_model(model: str) -> bool:
    """True for OpenAI reasoning model families (they report reasoning tokens)."""
    return model.startswith(_REASONING_PREFIXES)


@dataclass(frozen=True, slots=True)
class Tokens:
    """One answer's usage in MentatLab's meaning (tokens; see ``model/span.py``).

    ``input`` is INCLUSIVE of cache reads and writes; ``output`` is inclusive of
    ``reasoning``. Zero means the provider reported zero or did not report the detail.
    """

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer of a fake."""

    provider: str
    """OTel provider name: ``openai``, ``anthropic``, ``aws.bedrock``."""
    api: str
    """``chat``, ``responses``, ``messages``, ``converse``, ``converse-stream``, ``invoke``."""
    case: str
    """The request's ``[case:ID]`` tag, ``""`` without one."""
    status: int
    """HTTP status answered."""
    model: str
    """Model named in the answer (the response model); the request's model on errors."""
    stream: bool
    usage: dict[str, Any]
    """The usage object exactly as sent, in the provider's format (``{}`` on errors)."""
    tokens: Tokens | None
    """The same usage in MentatLab's meaning; None for errors."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """The tags found in one request body."""

    case: str
    cache_read: bool
    cache_write: bool
    fail: str
    """``"429"``, ``"400"`` or ``""``."""

    @classmethod
    def from_body(cls, body: Any) -> Scenario:
        """Parse the tags from a decoded JSON request body (searched as text)."""
        text = json.dumps(body)
        case = _CASE.search(text)
        cache = _CACHE.search(text)
        fail = _FAIL.search(text)
        kind = cache.group(1) if cache else ""
        return cls(case=case.group(1) if case else "", cache_read="read" in kind,
                   cache_write="write" in kind, fail=fail.group(1) if fail else "")


@dataclass
class Recorder:
    """Every answer of one fake, in order; thread-safe."""

    answers: list[Answer] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_index(self) -> int:
        """A running number for this fake's answers (0, 1, 2...), for distinct usage."""
        with self._lock:
            return len(self.answers)

    def should_fail(self, scenario: Scenario) -> int | None:
        """The HTTP status to refuse this request with, or None to answer it."""
        with self._lock:
            seen = self._seen.get(scenario.case, 0)
            self._seen[scenario.case] = seen + 1
        if scenario.fail == "400":
            return 400
        if scenario.fail == "429" and seen == 0:
            return 429
        return None

    def record(self, answer: Answer) -> None:
        """Append one answer."""
        with self._lock:
            self.answers.append(answer)

    def for_case(self, case: str) -> list[Answer]:
        """The answers recorded for ``case``, in order."""
        with self._lock:
            return [a for a in self.answers if a.case == case]
