"""Tool arguments hash: which tool calls repeat the same arguments, without the text twice.

A tool-execution span (operation ``tool``) records its call arguments in one of these
attributes, first found wins (:data:`ARGUMENT_KEYS`):

* ``gen_ai.tool.call.arguments`` (OTel GenAI semconv, execute_tool spans);
* ``tool_arguments`` (Pydantic AI / Logfire);
* ``ai.toolCall.args`` (Vercel AI SDK);
* ``gcp.vertex.agent.tool_call_args`` (Google ADK);
* ``traceloop.entity.input`` (OpenLLMetry / Traceloop);
* ``input.value`` (OpenInference: a TOOL span's input is its arguments; OpenInference's
  ``tool.parameters`` is the tool's parameter *schema*, the same on every call, so it is
  not used).

The text stays where it arrived (``attributes``); :class:`HashToolArguments` stores only
``tool_args_hash``: the first 16 hex chars (64 bits) of the SHA-256 of the attribute's
string value as stored in the ``attributes`` JSON (escapes kept), ``""`` for spans that
are no tool execution or carry none of the keys. Equal text hashes alike; arguments
serialised in another key order are another text (the producer's own serialisation is
hashed, not a parsed form). The work is columnar: one RE2 extraction per key over the
batch's ``attributes`` column (``pyarrow.compute``), then one SHA-256 per *distinct*
argument text. The reliability analytics (``analytics/reliability.py``) count a loop when
one trace calls the same tool with the same hash repeatedly.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from mentatlab.model.span import CanonicalSpan, Operation

__all__ = ["ARGUMENT_KEYS", "HashToolArguments", "hash_tool_arguments"]

ARGUMENT_KEYS: Final[tuple[str, ...]] = (
    "gen_ai.tool.call.arguments", "tool_arguments", "ai.toolCall.args",
    "gcp.vertex.agent.tool_call_args", "traceloop.entity.input", "input.value")
"""Attributes holding a tool call's arguments, in the order they are tried."""
HASH_HEX_CHARS: Final = 16
"""Hex characters of SHA-256 kept (64 bits)."""

_PATTERNS = tuple(rf'"{re.escape(key)}":\s*"(?P<v>(?:[^"\\]|\\.)*)"' for key in ARGUMENT_KEYS)


def hash_tool_arguments(attributes: pa.Array, operation: pa.Array) -> pa.Array:
    """``tool_args_hash`` of N spans given as columns.

    Args:
        attributes: N ``attributes`` JSON strings (as normalized).
        operation: N ``operation`` values; only ``tool`` rows are hashed.

    Returns:
        N strings: 16 hex chars, or ``""`` (no tool execution, or no argument attribute).
    """
    found = pa.nulls(len(attributes), pa.string())
    for pattern in _PATTERNS:
        found = pc.coalesce(found, pc.struct_field(
            pc.extract_regex(attributes, pattern=pattern), [0]))
    found = pc.if_else(pc.equal(operation, Operation.TOOL.value), found,
                       pa.nulls(len(attributes), pa.string()))
    distinct = pc.unique(found.drop_null())
    digests = pa.array([hashlib.sha256(text.encode()).hexdigest()[:HASH_HEX_CHARS]
                        for text in distinct.to_pylist()], pa.string())
    return pc.take(digests, pc.index_in(found, value_set=distinct)).fill_null("")


class HashToolArguments:
    """Processor ``tool_args``: sets ``tool_args_hash`` on tool-execution spans of a batch."""

    name = "tool_args"

    def __call__(self, spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
        """Hash the arguments of the N' tool spans of a batch of N spans, in place."""
        tools = [s for s in spans if s.operation is Operation.TOOL]
        if not tools:
            return spans
        hashes = hash_tool_arguments(
            pa.array([s.attributes for s in tools], pa.string()),
            pa.array([s.operation.value for s in tools], pa.string())).to_pylist()
        for span, value in zip(tools, hashes, strict=True):
            span.tool_args_hash = value
        return spans
