"""The prompt-prefix processor: a hash of the input's first 4,096 characters, never the text.

Spans go through the real normalizer and processor; the stored-row test writes them to
both backends and reads every string column back.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from mentatlab.model.raw import RawSpan
from mentatlab.model.schema import SPAN_COLUMNS, spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.pipeline.normalize import Normalize
from mentatlab.pipeline.processor import Pipeline
from mentatlab.pipeline.prompt_prefix import PREFIX_CHARS, PromptPrefix, hash_prefix
from mentatlab.storage.base import SpanStore

T0_NS = 1_763_000_000_000_000_000
SYSTEM = "You are a careful support agent. " * 200  # 6,600 characters
assert len(SYSTEM) > PREFIX_CHARS
_ids = iter(range(1, 10_000))


def _raw(attributes: dict[str, Any], events: list[dict[str, Any]] | None = None) -> RawSpan:
    n = next(_ids)
    return RawSpan(trace_id=f"{n:032x}", span_id=f"{n:016x}", parent_span_id="",
                   name="chat gpt-4o", start_time_ns=T0_NS, end_time_ns=T0_NS + 1_000_000,
                   kind="client", attributes={"gen_ai.operation.name": "chat",
                                              "gen_ai.request.model": "gpt-4o",
                                              "gen_ai.provider.name": "openai", **attributes},
                   events=events or [])


def _run(*raws: RawSpan) -> list[CanonicalSpan]:
    return Pipeline(Normalize(), [PromptPrefix()]).run_spans(list(raws)).spans


def _genai(system: str, user: str) -> dict[str, Any]:
    return {"gen_ai.system_instructions": orjson.dumps(
                [{"type": "text", "content": system}]).decode(),
            "gen_ai.input.messages": orjson.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": user}]}]).decode()}


def _expected(text: str) -> int:
    digest = hashlib.blake2b(text[:PREFIX_CHARS].encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def test_same_prefix_same_hash_different_prefix_different_hash() -> None:
    a, b, c = _run(_raw(_genai(SYSTEM, "Where is my order?")),
                   _raw(_genai(SYSTEM, "Cancel my subscription")),
                   _raw(_genai("Other rules. " + SYSTEM, "Where is my order?")))
    text = f"system\n{SYSTEM}\nuser\nWhere is my order?\n"
    assert a.prompt_prefix_hash == _expected(text) == hash_prefix(text) != 0
    assert a.prompt_prefix_hash == b.prompt_prefix_hash  # the tails differ, the prefix not
    assert c.prompt_prefix_hash not in (0, a.prompt_prefix_hash)
    assert (a.prompt_prefix_chars, a.prompt_chars) == (PREFIX_CHARS, len(text))
    assert b.prompt_chars == len(f"system\n{SYSTEM}\nuser\nCancel my subscription\n")


def test_short_prompts_get_no_hash_but_their_length() -> None:
    (short,) = _run(_raw(_genai("Be brief.", "Hi")))
    assert (short.prompt_prefix_hash, short.prompt_prefix_chars) == (0, 0)
    assert short.prompt_chars == len("system\nBe brief.\nuser\nHi\n")
    (nothing,) = _run(_raw({}))
    assert (nothing.prompt_prefix_hash, nothing.prompt_chars) == (0, 0)
    # a tool span with a long input is not an LLM call
    (tool,) = _run(_raw({"gen_ai.operation.name": "execute_tool", "input.value": SYSTEM}))
    assert tool.prompt_prefix_hash == 0


@pytest.mark.parametrize("attributes,events", [
    ({"gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": SYSTEM,
      "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "Where is my order?"}, None),
    ({"llm.input_messages.0.message.role": "system",
      "llm.input_messages.0.message.content": SYSTEM,
      "llm.input_messages.1.message.role": "user",
      "llm.input_messages.1.message.content": "Where is my order?"}, None),
    ({"ai.prompt.messages": orjson.dumps([
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Where is my order?"}]).decode()}, None),
    ({}, [{"name": "gen_ai.system.message", "time_ns": T0_NS, "attributes": {"content": SYSTEM}},
          {"name": "gen_ai.user.message", "time_ns": T0_NS,
           "attributes": {"content": "Where is my order?"}}]),
], ids=["openllmetry", "openinference", "vercel-ai", "genai-events"])
def test_every_convention_hashes_the_same_messages_alike(
        attributes: dict[str, Any], events: list[dict[str, Any]] | None) -> None:
    (genai,) = _run(_raw(_genai(SYSTEM, "Where is my order?")))
    (other,) = _run(_raw(attributes, events))
    assert other.prompt_prefix_hash == genai.prompt_prefix_hash != 0
    assert other.prompt_chars == genai.prompt_chars


def test_plain_input_value_and_prompt_strings() -> None:
    (oi,) = _run(_raw({"input.value": SYSTEM}))
    (legacy,) = _run(_raw({"gen_ai.prompt": SYSTEM}))
    assert oi.prompt_prefix_hash == legacy.prompt_prefix_hash == _expected(f"\n{SYSTEM}\n")


def test_the_text_is_stored_once(store: SpanStore) -> None:
    marker = "UNIQUE-MARKER-7f3a"
    spans = _run(_raw(_genai(marker + SYSTEM, "Where is my order?")))
    store.migrate()
    store.append_batch(spans_to_arrow(spans))
    row = store.query_arrow("SELECT * FROM spans").to_pylist()[0]
    assert row["prompt_prefix_hash"] == spans[0].prompt_prefix_hash != 0
    assert row["prompt_prefix_chars"] == PREFIX_CHARS
    holding = [c.name for c in SPAN_COLUMNS if isinstance(row[c.name], str)
               and marker in row[c.name]]
    assert holding == ["attributes"]  # as received; the new columns hold numbers only
    assert row["attributes"].count(marker) == 1


def test_migrate_adds_the_columns_to_an_older_store(store: SpanStore) -> None:
    store.migrate()
    for name in ("prompt_prefix_hash", "prompt_prefix_chars", "prompt_chars"):
        store.execute(f"ALTER TABLE spans DROP COLUMN {name}")
    store.migrate()
    names = {r["name"] for r in store.query_arrow(
        "SELECT name FROM system.columns WHERE database = currentDatabase() "
        "AND table = 'spans'").to_pylist()}
    assert {"prompt_prefix_hash", "prompt_prefix_chars", "prompt_chars"} <= names
